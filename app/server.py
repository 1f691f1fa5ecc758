"""``sam2voice serve``: the voice web page, sign-in, and one voice websocket per person.

Gemini Live speaks when a key is set; otherwise the offline voice (speech-to-text, the
graph, text-to-speech) does, on the same page. Either way every turn goes through the
companion graph of this process (``app.companion``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.staticfiles import StaticFiles
from google import genai
from pydantic import BaseModel, Field

from app.auth import BadToken, TokenSigner
from app.companion import Companion, open_companion
from app.settings import Settings
from app.voice_setup import OfflineSpeech, VoiceMode, live_client, live_options, offline_speech, session_factory
from app.voice_socket import VoiceSocket
from memories.errors import InvalidInput

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "web"


class SignIn(BaseModel):
    """Sign-in request: who is talking."""

    name: str = Field(description="The person's name or id (1-128 printable characters).")


class SignedIn(BaseModel):
    """A sign-in token for the voice websocket."""

    token: str = Field(description="Pass as ?token= to /ws.")
    user: str = Field(description="The user id the token is for.")
    mode: VoiceMode = Field(description="live (Gemini Live) or offline (local speech).")
    expires_at: float = Field(description="Unix time the token expires.")


class VoiceRooms:
    """Each signed-in person's one open voice socket; a second one takes over from the first."""

    def __init__(self) -> None:
        self._open: dict[str, VoiceSocket] = {}
        self._lock = asyncio.Lock()

    async def enter(self, socket: VoiceSocket) -> None:
        """Make ``socket`` the person's only connection."""
        async with self._lock:
            previous = self._open.get(socket.user_id)
            self._open[socket.user_id] = socket
        if previous is not None:
            await previous.replace()

    async def leave(self, socket: VoiceSocket) -> None:
        """Forget ``socket`` (if it is still the person's current one)."""
        async with self._lock:
            if self._open.get(socket.user_id) is socket:
                del self._open[socket.user_id]


def create_app(settings: Settings, *, companion: Companion | None = None, client: genai.Client | None = None,
               mode: VoiceMode | None = None, secret: str | None = None, speech: OfflineSpeech | None = None
               ) -> FastAPI:
    """The voice server. ``companion``/``client``/``speech`` may be given (tests, the CLI); otherwise
    they are opened from settings when the server starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.companion = companion or await stack.enter_async_context(open_companion(settings))
            app.state.client = client or live_client(settings)
            app.state.mode = mode or ("live" if app.state.client is not None else "offline")
            app.state.speech = None
            if app.state.mode == "offline":
                app.state.speech = speech or offline_speech()
                for engine in app.state.speech:  # load the models now, not during someone's first turn
                    await engine.load()
            log.info("voice server ready (%s voice)", app.state.mode)
            yield

    app = FastAPI(title="sam2voice", summary="The voice companion's web page and voice websocket.",
                  lifespan=lifespan)
    signer = TokenSigner(secret or (settings.serve_secret.get_secret_value() if settings.serve_secret else None))
    rooms = VoiceRooms()
    options = live_options(settings)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, and which voice the server speaks with."""
        return {"ok": True, "mode": app.state.mode}

    @app.post("/api/session")
    async def sign_in(request: SignIn) -> SignedIn:
        """Issue a voice token for a person (the websocket trusts only this)."""
        try:
            token, user, expires_at = signer.issue(request.name)
        except InvalidInput as exc:
            raise HTTPException(status_code=422, detail=f"name {exc}") from exc
        return SignedIn(token=token, user=user, mode=app.state.mode, expires_at=expires_at)

    @app.websocket("/ws")
    async def voice(websocket: WebSocket, token: str = "") -> None:
        """One person's voice session (protocol: docs/voice-protocol.md)."""
        await websocket.accept()
        try:
            user = signer.verify(token)
        except BadToken as exc:
            await websocket.send_json({"type": "error", "code": "bad_token", "message": str(exc)})
            await websocket.close(code=4401)
            return
        make = session_factory(app.state.companion, user, mode=app.state.mode, client=app.state.client,
                               options=options, speech=app.state.speech)
        socket = VoiceSocket(websocket, user, make)
        await rooms.enter(socket)
        try:
            await socket.serve()
        finally:
            await rooms.leave(socket)

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
