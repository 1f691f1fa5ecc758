"""``sam2voice serve``: the voice web page, accounts (password or passkey), and one voice
websocket per person.

Who is talking comes only from a server-side session (``app.accounts``): the sign-in
endpoints set the ``sam2voice_session`` cookie (httpOnly, SameSite=Strict, Secure off
localhost) and the websocket reads it. Signing out revokes it at once and closes that
session's open socket, in whichever worker or process holds it (``app.web.presence``).

Gemini Live speaks when a key is set; otherwise the offline voice (speech-to-text, the
graph, text-to-speech) does, on the same page. Either way every turn goes through the
companion graph of this process (``app.companion``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from google import genai
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from app.accounts import AccountError, AccountStore, RateLimit, TooManyAttempts
from app.audit import AuditEvent, AuditKind, AuditLog
from app.companion import Companion
from app.logs import configure_logging
from app.person_data import PersonData, PersonExport, PersonMemories
from app.settings import Settings
from app.web.hardening import install_hardening
from app.web.metrics import CONTENT_TYPE_LATEST, ObservedApp, ServerMetrics
from app.web.presence import VoicePresence
from app.web.readiness import Readiness, ReadyReport
from app.web.voice_setup import OfflineSpeech, VoiceMode, live_client, live_options, offline_speech, session_factory
from app.web.voice_socket import VoiceSocket
from memories.errors import InvalidInput, RecordNotFound
from memories.interventions import Intervention
from memories.outcomes import Outcome
from memories.profile import Profile, ProfileMemory, ProfileUpdate
from voice.events import ErrorEvent

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "static"
COOKIE = "sam2voice_session"
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


class Credentials(BaseModel):
    """A name and password (sign-up or sign-in)."""

    name: str = Field(min_length=1, max_length=128, description="The person's name or id (1-128 printable characters).")
    password: str = Field(min_length=1, max_length=1024, description="Sign-up: at least 8 characters.")


class PasswordChange(BaseModel):
    """Change the signed-in person's password."""

    current_password: str = Field("", max_length=1024, description="The current password ('' for a passkey-only "
                                  "account setting its first one).")
    new_password: str = Field(min_length=1, max_length=1024, description="At least 8 characters.")


class SignedIn(BaseModel):
    """Who is signed in (the session itself is the httpOnly ``sam2voice_session`` cookie)."""

    user: str = Field(description="The signed-in user id.")
    mode: VoiceMode = Field(description="live (Gemini Live) or offline (local speech).")
    has_password: bool = Field(False, description="The account has a password.")
    passkeys: int = Field(0, description="How many passkeys the account has.")


class Done(BaseModel):
    """A request that did what it said."""

    ok: bool = True
    revoked: int = Field(0, description="Sessions revoked.")


class PasskeyStart(BaseModel):
    """Start adding a passkey: ``name`` for a new account; omit it when signed in."""

    name: str | None = Field(None, max_length=128, description="New account's name (sign-up with a passkey).")


class PasskeyOptions(BaseModel):
    """WebAuthn options for navigator.credentials.create/get (base64url fields), and the ceremony's id."""

    challenge_id: str = Field(description="Send back with the verify request (valid for 5 minutes, once).")
    options: dict[str, Any] = Field(description="PublicKeyCredentialCreationOptions / RequestOptions as JSON.")


class PasskeyFinish(BaseModel):
    """The browser's credential (JSON, base64url fields) for a ceremony."""

    challenge_id: str = Field(max_length=64)
    credential: dict[str, Any] = Field(description="PublicKeyCredential.toJSON() of the new or used passkey.")


class OutcomeCorrection(BaseModel):
    """What an intervention's outcome really was ("actually that helped")."""

    outcome: Outcome = Field(description="The corrected outcome.")


class OutcomeCorrected(BaseModel):
    """The intervention after the correction."""

    intervention: Intervention
    previous: Outcome = Field(description="The outcome it had before.")


class ForgetRequest(BaseModel):
    """Confirm forgetting by typing your name (the name you sign in with)."""

    confirm: str = Field("", max_length=128, description="The signed-in person's name, exactly.")


class Forgotten(BaseModel):
    """What was deleted, per store (keys or records)."""

    ok: bool = True
    deleted: dict[str, int] = Field(description="Records or keys deleted per store.")


class AuditTrail(BaseModel):
    """The person's audit log, newest first."""

    events: list[AuditEvent]


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.1 and ::1 (without the port)."""
    return host.lower() in LOOPBACK


def request_host(connection: HTTPConnection) -> str:
    """The host the page was asked for, without the port."""
    host = connection.headers.get("host") or (connection.url.hostname or "")
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def rp_id_for(connection: HTTPConnection) -> str:
    """The WebAuthn relying party id: the page's host, 'localhost' for loopback addresses."""
    host = request_host(connection)
    return "localhost" if is_loopback(host) else host.lower()


def origin_for(connection: HTTPConnection) -> str:
    """The page's origin as the browser sees it (scheme + Host header)."""
    return f"{connection.url.scheme}://{connection.headers.get('host', '')}"


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def create_app(settings: Settings, *, companion: Companion | None = None, client: genai.Client | None = None,
               mode: VoiceMode | None = None, speech: OfflineSpeech | None = None,
               account_limit: RateLimit | None = None) -> FastAPI:
    """The voice server. ``companion``/``client``/``speech`` may be given (tests, the CLI); otherwise
    they are opened from settings when the server starts. ``account_limit`` overrides the sign-in
    rate limit per account. Sessions are server-side (``app.accounts``): nothing is signed, so
    there is no secret to keep."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.companion = companion or await stack.enter_async_context(Companion.build(settings))
            app.state.client = client or live_client(settings)
            app.state.mode = mode or ("live" if app.state.client is not None else "offline")
            app.state.speech = None
            if app.state.mode == "offline":
                app.state.speech = speech or offline_speech()
                for engine in app.state.speech:  # load the models now, not during someone's first turn
                    await engine.load()
            deps = app.state.companion.deps
            extra = {"account_limit": account_limit} if account_limit is not None else {}
            namespace = deps.memory.registry.backend.settings.namespace
            app.state.accounts = AccountStore(deps.memory.client, namespace, **extra)
            app.state.audit = AuditLog(deps.memory.client, namespace)
            app.state.presence = VoicePresence(app.state.accounts, deps.memory.client, namespace,
                                               recheck_s=settings.voice_recheck_s, on_forget=deps.outbox.drop)
            await app.state.presence.start()
            stack.push_async_callback(app.state.presence.stop)
            app.state.person_data = app.state.companion.person_data(accounts=app.state.accounts,
                                                                    audit=app.state.audit)
            app.state.readiness = Readiness(app.state.companion, settings, mode=app.state.mode,
                                            speech=app.state.speech)
            metrics.watch(outbox=lambda: len(deps.outbox), sockets=lambda: len(open_sockets),
                          degraded=lambda: sum(1 for s in open_sockets if s.degraded),
                          embeddings=deps.memory.embeddings)
            log.info("voice server ready (%s voice)", app.state.mode)
            yield

    app = FastAPI(title="sam2voice", summary="The voice companion's web page and voice websocket.",
                  lifespan=lifespan)
    install_hardening(app, settings)
    metrics = app.state.metrics = ServerMetrics()  # this app's own registry: two apps never share figures
    app.add_middleware(ObservedApp, metrics=metrics)  # every request, socket and the lifespan report to it
    options = live_options(settings)
    penalties: dict[str, float] = {}  # user tag -> until when its new sockets are refused (it flooded)
    open_sockets: set[VoiceSocket] = set()  # this process's voice sockets (for /metrics)

    def accounts() -> AccountStore:
        return app.state.accounts  # type: ignore[no-any-return]

    def presence() -> VoicePresence:
        return app.state.presence  # type: ignore[no-any-return]

    def person_data() -> PersonData:
        return app.state.person_data  # type: ignore[no-any-return]

    async def audit(request: Request, user: str, kind: AuditKind, **detail: str) -> None:
        await app.state.audit.record(user, kind, address=client_address(request), **detail)

    def refused(exc: AccountError) -> HTTPException:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else None
        return HTTPException(status_code=exc.status, detail=exc.message, headers=headers)

    async def signed_in(request: Request) -> SignedIn:
        info = await accounts().info(request.state.user)
        return SignedIn(user=request.state.user, mode=app.state.mode, **info)

    def set_cookie(request: Request, response: Response, cookie: str) -> None:
        response.set_cookie(COOKIE, cookie, max_age=accounts().session_ttl_s, httponly=True, samesite="strict",
                            secure=not is_loopback(request_host(request)), path="/")

    async def start_session(request: Request, response: Response, user: str) -> SignedIn:
        set_cookie(request, response, await accounts().open_session(user))
        request.state.user = user
        return await signed_in(request)

    async def current_user(request: Request) -> str:
        """The signed-in user (from the session cookie), or 401."""
        user = await accounts().session_user(request.cookies.get(COOKIE))
        if user is None:
            raise HTTPException(status_code=401, detail="Please sign in.")
        request.state.user = user
        return user

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, and which voice the server speaks with."""
        return {"ok": True, "mode": app.state.mode}

    @app.get("/readyz", response_model=ReadyReport,
             responses={503: {"model": ReadyReport, "description": "Not ready: a check failed (see its detail)."}})
    async def readyz() -> JSONResponse:
        """Readiness: Redis answers and has Search and JSON, the embedder embeds, the chat model
        is built, the voice can speak. 200 when every check passes, else 503; each check's detail."""
        report = await app.state.readiness.report()
        return JSONResponse(report.model_dump(), status_code=200 if report.ok else 503)

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text format): node and memory-operation latency, turns, outcomes
        settled by kind, safety replies (a count), outbox depth, degraded sessions, open sockets."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/signup", status_code=201, responses={409: {"description": "The name has an account already."},
                                                          422: {"description": "Bad name or too short a password."}})
    async def sign_up(body: Credentials, request: Request, response: Response) -> SignedIn:
        """Create an account with a password and sign in (sets the session cookie)."""
        try:
            user = await accounts().sign_up(body.name, body.password)
        except AccountError as exc:
            raise refused(exc) from exc
        await audit(request, user, "sign_up", method="password")
        return await start_session(request, response, user)

    @app.post("/api/signin", responses={401: {"description": "Name and password don't match (same for unknown "
                                                              "names)."},
                                        429: {"description": "Too many failed attempts; see Retry-After."}})
    async def sign_in(body: Credentials, request: Request, response: Response) -> SignedIn:
        """Sign in with a password (sets the session cookie)."""
        failed = await accounts().failed_attempts(body.name)  # before a success clears the count
        try:
            user = await accounts().sign_in(body.name, body.password, address=client_address(request))
        except AccountError as exc:
            raise refused(exc) from exc
        await audit(request, user, "sign_in", method="password", **({"failed_before": str(failed)} if failed else {}))
        return await start_session(request, response, user)

    @app.get("/api/me", responses={401: {"description": "Not signed in."}})
    async def me(request: Request, response: Response, _: str = Depends(current_user)) -> SignedIn:
        """Who this browser is signed in as (the session and its cookie are refreshed for another 12 h)."""
        set_cookie(request, response, request.cookies[COOKIE])
        return await signed_in(request)

    @app.post("/api/signout")
    async def sign_out(request: Request, response: Response) -> Done:
        """Sign this browser out: the session stops working at once and its voice socket closes."""
        cookie = request.cookies.get(COOKIE)
        user = await accounts().close_session(cookie)
        if user is not None and cookie:
            await presence().sign_out(user, {cookie})
            await audit(request, user, "sign_out")
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=not is_loopback(request_host(request)))
        return Done(revoked=int(user is not None))

    @app.post("/api/signout-everywhere", responses={401: {"description": "Not signed in."}})
    async def sign_out_everywhere(request: Request, response: Response, user: str = Depends(current_user)) -> Done:
        """Revoke every session of the signed-in person (every browser) and close their voice socket."""
        revoked = await accounts().close_all_sessions(user)
        await presence().sign_out(user)
        await audit(request, user, "sign_out_everywhere", revoked=str(len(revoked)))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=not is_loopback(request_host(request)))
        return Done(revoked=len(revoked))

    @app.post("/api/password", responses={401: {"description": "Not signed in, or the current password is wrong."},
                                          422: {"description": "The new password is too short."}})
    async def change_password(body: PasswordChange, request: Request, user: str = Depends(current_user)) -> Done:
        """Change the password; every other session of the person is signed out."""
        try:
            await accounts().change_password(user, body.current_password, body.new_password,
                                             address=client_address(request))
        except AccountError as exc:
            raise refused(exc) from exc
        await audit(request, user, "password_change")
        keep = request.cookies.get(COOKIE)
        revoked = await accounts().close_all_sessions(user, keep=keep)
        if revoked:
            await presence().sign_out(user, set(revoked))
        return Done(revoked=len(revoked))

    @app.post("/api/passkey/register/options", responses={409: {"description": "The name has an account already."}})
    async def passkey_register_options(body: PasskeyStart, request: Request) -> PasskeyOptions:
        """Start adding a passkey: to the signed-in account, or (with ``name``) to a new account (sign-up)."""
        user = await accounts().session_user(request.cookies.get(COOKIE))
        try:
            if user is not None and body.name is None:
                challenge, opts = await accounts().register_options(user, new_account=False, rp_id=rp_id_for(request))
            elif body.name is not None:
                challenge, opts = await accounts().register_options(body.name, new_account=True,
                                                                    rp_id=rp_id_for(request))
            else:
                raise HTTPException(status_code=422, detail="Give a name for the new account, or sign in first.")
        except AccountError as exc:
            raise refused(exc) from exc
        return PasskeyOptions(challenge_id=challenge, options=opts)

    @app.post("/api/passkey/register/verify", responses={400: {"description": "The passkey could not be checked."}})
    async def passkey_register_verify(body: PasskeyFinish, request: Request, response: Response) -> SignedIn:
        """Finish adding a passkey; a passkey sign-up creates the account and signs in."""
        current = await accounts().session_user(request.cookies.get(COOKIE))
        try:
            user = await accounts().register_verify(body.challenge_id, body.credential, rp_id=rp_id_for(request),
                                                    origin=origin_for(request), signed_in_as=current)
        except AccountError as exc:
            raise refused(exc) from exc
        await audit(request, user, "passkey_added" if current == user else "sign_up", method="passkey")
        if current == user:
            request.state.user = user
            return await signed_in(request)
        return await start_session(request, response, user)

    @app.post("/api/passkey/signin/options")
    async def passkey_signin_options(request: Request) -> PasskeyOptions:
        """Start signing in with a passkey (the browser offers the person's passkeys for this site)."""
        challenge, opts = await accounts().signin_options(rp_id=rp_id_for(request))
        return PasskeyOptions(challenge_id=challenge, options=opts)

    @app.post("/api/passkey/signin/verify", responses={400: {"description": "The passkey could not be checked."},
                                                       429: {"description": "Too many failed attempts."}})
    async def passkey_signin_verify(body: PasskeyFinish, request: Request, response: Response) -> SignedIn:
        """Finish a passkey sign-in (sets the session cookie)."""
        try:
            user = await accounts().signin_verify(body.challenge_id, body.credential, rp_id=rp_id_for(request),
                                                  origin=origin_for(request), address=client_address(request))
        except AccountError as exc:
            raise refused(exc) from exc
        failed = await accounts().failed_attempts(user)  # password guesses on the name (a passkey keeps them)
        await audit(request, user, "sign_in", method="passkey", **({"failed_before": str(failed)} if failed else {}))
        return await start_session(request, response, user)

    # ---- the person's data (always the signed-in person's own) -------------------------------

    not_signed_in = {401: {"description": "Not signed in."}}

    @app.get("/api/data", responses=not_signed_in)
    async def export_data(request: Request, user: str = Depends(current_user)) -> PersonExport:
        """Everything remembered about you, as JSON (the same as ``sam2voice memory export``)."""
        data = await person_data().export(user)
        await audit(request, user, "export")
        return PersonExport.model_validate(data)

    @app.get("/api/memories", responses=not_signed_in)
    async def memories(user: str = Depends(current_user)) -> PersonMemories:
        """What the companion remembers about you, readably: profile, current state, reflections,
        past interventions with their outcomes (newest first, at most 50), plan, check-ins and
        reminders, safety events."""
        return await person_data().memories(user)

    @app.patch("/api/profile", responses={**not_signed_in, 422: {"description": "A field is not valid."}})
    async def edit_profile(body: ProfileUpdate, request: Request, user: str = Depends(current_user)) -> Profile:
        """Change your profile: only the fields given change (``null`` clears one). The consents
        ``consent_diagnosis_in_prompts`` is off until you turn it on; ``consent_pooled_learning``
        (your results, as anonymous counts, help people like you) is on until you turn it off,
        which also takes back everything you added."""
        if app.state.companion.deps.memory.registry.get(ProfileMemory) is None:
            raise HTTPException(status_code=404, detail="Profiles are switched off on this server.")
        changes = body.model_dump(mode="json", exclude_unset=True)
        try:
            updated: Profile = await person_data().update_profile(user, changes)
        except InvalidInput as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        await audit(request, user, "profile_edit", fields=",".join(sorted(changes)))
        return updated

    @app.post("/api/interventions/{intervention_id}/outcome",
              responses={**not_signed_in, 404: {"description": "You have no intervention with that id."}})
    async def correct_outcome(intervention_id: str, body: OutcomeCorrection, request: Request,
                              user: str = Depends(current_user)) -> OutcomeCorrected:
        """Correct how an intervention turned out ("actually that helped"); the per-tool
        success counters move with it."""
        if body.outcome is Outcome.PENDING:
            raise HTTPException(status_code=422, detail="Say how it turned out: 'pending' is not an outcome.")
        if len(intervention_id) > 64:
            raise HTTPException(status_code=404, detail="There is no such intervention of yours.")
        try:
            previous, current = await person_data().correct_outcome(user, intervention_id, body.outcome)
        except RecordNotFound as exc:
            raise HTTPException(status_code=404, detail="There is no such intervention of yours.") from exc
        await audit(request, user, "outcome_correction", intervention=intervention_id, previous=previous.value,
                    outcome=body.outcome.value)
        return OutcomeCorrected(intervention=current, previous=previous)

    @app.delete("/api/data", responses={**not_signed_in, 400: {"description": "The confirmation is not your name; "
                                                                              "nothing was deleted."}})
    async def forget_me(request: Request, response: Response, body: ForgetRequest | None = None,
                        user: str = Depends(current_user)) -> Forgotten:
        """Forget me: delete every memory, the coaching state, the conversations, the account
        (passkeys, sessions) and the audit log. Send ``{"confirm": "<your name>"}``. Afterwards
        no cookie of yours works."""
        if body is None or body.confirm.strip() != user:
            raise HTTPException(status_code=400, detail="To forget everything, type your name exactly as you sign "
                                                        "in with it. Nothing was deleted.")
        await audit(request, user, "forget_request")
        log.info("forgetting a person at their request")
        await presence().sign_out(user)
        deleted = await person_data().forget(user)
        await presence().forgotten(user)  # other processes drop the person's writes still queued
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=not is_loopback(request_host(request)))
        return Forgotten(deleted=deleted)

    @app.get("/api/audit", responses=not_signed_in)
    async def audit_log(user: str = Depends(current_user)) -> AuditTrail:
        """What was done with your account and data, and from which address, newest first."""
        return AuditTrail(events=await app.state.audit.events(user))

    @app.websocket("/ws")
    async def voice(websocket: WebSocket) -> None:
        """One person's voice session (protocol: docs/voice-protocol.md); who it is comes from the session cookie."""
        cookie = websocket.cookies.get(COOKIE)
        tag = (cookie or "").split(".", 1)[0]
        if penalties.get(tag, 0.0) > time.monotonic():  # flooded a moment ago: refused before any work
            await websocket.close(code=1008)
            return
        await websocket.accept()
        user = await accounts().session_user(cookie)
        if user is None or cookie is None:
            expired = ErrorEvent(code="bad_session",
                                 message="Please sign in again: your sign-in has expired or is not valid.")
            await websocket.send_json(expired.model_dump())
            await websocket.close(code=4401)
            return
        make = session_factory(app.state.companion, user, mode=app.state.mode, client=app.state.client,
                               options=options, speech=app.state.speech)
        socket = VoiceSocket(websocket, user, make)
        await presence().enter(socket, cookie)
        open_sockets.add(socket)
        watch = asyncio.create_task(presence().watch(socket, cookie))  # revoked or expired: closes it
        try:
            await socket.serve()
        finally:
            open_sockets.discard(socket)
            watch.cancel()
            await presence().leave(socket)
            if socket.penalized:
                now = time.monotonic()
                for stale in [t for t, until in penalties.items() if until <= now]:
                    del penalties[stale]
                penalties[tag] = now + socket.limits.flood_penalty_s

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def app_from_environment() -> FastAPI:
    """``sam2voice serve --workers N``: each worker process builds its app from the environment
    (the CLI has put the served host and port there), and loads its own models."""
    settings = Settings()
    configure_logging(settings)
    return create_app(settings)
