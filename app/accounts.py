"""Accounts with real credentials: passwords (argon2id), passkeys (WebAuthn), server-side sessions.

Everything lives in Redis under the app's namespace. Keys about one person end in that
person's hash tag (``memories.keys``), so each person's keys share one cluster slot::

    {ns}:account:{<tag>}                 HASH user, password (argon2id hash or ""), handle, created_at
    {ns}:passkeys:{<tag>}                HASH credential id (base64url) -> JSON public key, sign count
    {ns}:websession:{<tag>}:{sid}        the user id; TTL (refreshed on use)
    {ns}:websessions:{<tag>}             SET of the person's session cookies (sign out everywhere)
    {ns}:signin_fail:{<tag>}             HASH count, locked_until (failed sign-ins for that name)
    {ns}:audit:{<tag>}                   LIST the person's audit log (``app.audit``)

and three keys that are not about one person (looked up by something else than a name)::

    {ns}:passkey_handle:<handle>         the user id of a WebAuthn user handle (discoverable sign-in)
    {ns}:webauthn_challenge:<id>         a pending passkey ceremony (JSON); short TTL, used once
    {ns}:signin_addr:<address>           HASH count, locked_until (failed sign-ins from one address)

A session cookie is ``<tag>.<sid>``: the tag says which slot to look in, the random ``sid``
(``secrets.token_urlsafe``) is the secret. Sign-in errors never say whether a name has an
account: unknown names get the same message after hashing a dummy password, and their
failures are counted (and locked out) exactly like real accounts'.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from memories.errors import InvalidInput
from memories.keys import person_tag
from memories.validation import user_tag, validate_user_id

SIGNIN_FAILED = "That name and password don't match an account. Check both and try again."
PASSKEY_FAILED = "That passkey didn't work here. Try again, or sign in with your password."
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
SESSION_TTL_S = 12 * 3600
CHALLENGE_TTL_S = 300
RP_NAME = "sam2voice"


class AccountError(Exception):
    """A refused account request; ``status`` is the HTTP status it maps to, the message is for people."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NameTaken(AccountError):
    status = 409


class BadCredentials(AccountError):
    status = 401


class BadPassword(AccountError):
    status = 422


class PasskeyFailed(AccountError):
    status = 400


class TooManyAttempts(AccountError):
    """Locked out for ``retry_after`` seconds (HTTP 429 with Retry-After)."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
        super().__init__(f"Too many sign-in attempts that didn't work. Please wait {wait} and try again.")
        self.retry_after = seconds


@dataclass(frozen=True)
class RateLimit:
    """Free failures, then a lockout doubling from ``first_lockout_s`` up to ``max_lockout_s``."""

    free_failures: int = 5
    first_lockout_s: float = 1.0
    max_lockout_s: float = 15 * 60
    forget_after_s: float = 3600  # failures are forgotten this long after the last one

    def lockout(self, failures: int) -> float:
        """Seconds locked after the ``failures``-th failure (0: not yet)."""
        if failures < self.free_failures:
            return 0.0
        return float(min(self.max_lockout_s, self.first_lockout_s * 2 ** (failures - self.free_failures)))


ACCOUNT_LIMIT = RateLimit()
ADDRESS_LIMIT = RateLimit(free_failures=20)  # one address may serve a household or an office


def check_password(password: str) -> str:
    """A usable new password, else :class:`BadPassword`."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadPassword(f"Please use a password of at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise BadPassword(f"Please use a password of at most {MAX_PASSWORD_CHARS} characters.")
    return password


def check_name(name: str) -> str:
    """The name as a user id, else :class:`BadPassword`-like 422 with the validator's reason."""
    try:
        return validate_user_id(name.strip() if isinstance(name, str) else name)
    except InvalidInput as exc:
        reason = str(exc).removeprefix("user_id: ")
        error = AccountError(f"That name can't be used: it {reason}.")
        error.status = 422
        raise error from exc


class AccountStore:
    """Accounts, passkeys, sign-in rate limits and sessions on the app's async Redis client."""

    def __init__(self, client: aioredis.Redis, namespace: str, *, hasher: PasswordHasher | None = None,
                 session_ttl_s: int = SESSION_TTL_S, account_limit: RateLimit = ACCOUNT_LIMIT,
                 address_limit: RateLimit = ADDRESS_LIMIT, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.ns = namespace
        self.hasher = hasher or PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
        self.session_ttl_s = session_ttl_s
        self.account_limit = account_limit
        self.address_limit = address_limit
        self.clock = clock
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # ---- keys ------------------------------------------------------------------------------

    def _account(self, user: str) -> str:
        return f"{self.ns}:account:{person_tag(user)}"

    def _passkeys(self, user: str) -> str:
        return f"{self.ns}:passkeys:{person_tag(user)}"

    def _sessions(self, tag: str) -> str:
        return f"{self.ns}:websessions:{{{tag}}}"

    def _session(self, tag: str, sid: str) -> str:
        return f"{self.ns}:websession:{{{tag}}}:{sid}"

    def _voice(self, user: str) -> str:
        return f"{self.ns}:voice_live:{person_tag(user)}"

    def _failures(self, user: str) -> str:
        return f"{self.ns}:signin_fail:{{{user_tag(user)}}}"

    def _address(self, address: str) -> str:
        return f"{self.ns}:signin_addr:" + "".join(c if c.isalnum() or c in ".:-" else "_" for c in address)[:64]

    def _handle(self, handle: str) -> str:
        return f"{self.ns}:passkey_handle:{handle}"

    def _challenge(self, challenge_id: str) -> str:
        return f"{self.ns}:webauthn_challenge:{challenge_id}"

    # ---- accounts --------------------------------------------------------------------------

    async def exists(self, user: str) -> bool:
        return bool(await self.client.exists(self._account(user)))

    async def _create(self, user: str, password_hash: str, handle: str) -> None:
        key = self._account(user)
        if not await self.client.hsetnx(key, "user", user):
            raise NameTaken("That name already has an account. Sign in instead, or pick another name.")
        await self.client.hset(key, mapping={"password": password_hash, "handle": handle,
                                             "created_at": str(self.clock())})
        await self.client.set(self._handle(handle), user)

    async def sign_up(self, name: str, password: str) -> str:
        """A new account with a password; returns the user id."""
        user = check_name(name)
        check_password(password)
        if await self.exists(user):
            raise NameTaken("That name already has an account. Sign in instead, or pick another name.")
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        await self._create(user, hashed, bytes_to_base64url(secrets.token_bytes(32)))
        return user

    async def info(self, user: str) -> dict[str, Any]:
        """What the account has: a password, how many passkeys."""
        account = await self.client.hgetall(self._account(user))
        passkeys = await self.client.hlen(self._passkeys(user))
        return {"has_password": bool(account.get(b"password")), "passkeys": int(passkeys)}

    async def sign_in(self, name: str, password: str, *, address: str) -> str:
        """The user id if ``password`` is the account's; otherwise the one generic error (or a lockout)."""
        try:
            user = validate_user_id(name.strip() if isinstance(name, str) else name)
        except InvalidInput:
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            raise BadCredentials(SIGNIN_FAILED) from None
        await self._check_locks(user, address)
        stored = await self.client.hget(self._account(user), "password")
        hashed = stored.decode() if stored else ""
        ok = await asyncio.to_thread(self._verify, hashed or self._dummy_hash, password)
        if not (ok and hashed):
            await self._failed(user, address)
            raise BadCredentials(SIGNIN_FAILED)
        await self.client.delete(self._failures(user))
        if self.hasher.check_needs_rehash(hashed):
            await self.client.hset(self._account(user), "password", await asyncio.to_thread(self.hasher.hash, password))
        return user

    async def failed_attempts(self, name: str) -> int:
        """Failed sign-ins on this name lately (0 for a name that is not valid). Shown to the
        person once they sign in: writing each failure into their audit log would let anyone
        write there, and push real events out of it."""
        try:
            user = validate_user_id(name.strip() if isinstance(name, str) else name)
        except InvalidInput:
            return 0
        raw = await self.client.hget(self._failures(user), "count")
        return int(raw) if raw is not None else 0

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, password))
        except (VerificationError, InvalidHashError):
            return False

    async def change_password(self, user: str, current: str, new: str, *, address: str) -> None:
        """Replace the password (the current one must match; a passkey-only account may set one with '')."""
        check_password(new)
        await self._check_locks(user, address)
        stored = await self.client.hget(self._account(user), "password")
        hashed = stored.decode() if stored else ""
        if hashed and not await asyncio.to_thread(self._verify, hashed, current):
            await self._failed(user, address)
            raise BadCredentials("Your current password is not right.")
        if not hashed and not await self.client.hlen(self._passkeys(user)):
            raise BadCredentials("Your current password is not right.")
        await self.client.hset(self._account(user), "password", await asyncio.to_thread(self.hasher.hash, new))

    # ---- rate limits -----------------------------------------------------------------------

    async def _check_locks(self, user: str | None, address: str) -> None:
        now = self.clock()
        keys = [self._address(address)] + ([self._failures(user)] if user is not None else [])
        wait = 0.0
        for key in keys:
            until = await self.client.hget(key, "locked_until")
            if until is not None:
                wait = max(wait, float(until) - now)
        if wait > 0:
            raise TooManyAttempts(wait)

    async def _failed(self, user: str | None, address: str) -> None:
        targets = [(self._address(address), self.address_limit)]
        if user is not None:
            targets.append((self._failures(user), self.account_limit))
        for key, limit in targets:
            count = await self.client.hincrby(key, "count", 1)
            lock = limit.lockout(count)
            if lock:
                await self.client.hset(key, "locked_until", str(self.clock() + lock))
            await self.client.expire(key, int(limit.forget_after_s + limit.max_lockout_s))

    # ---- sessions --------------------------------------------------------------------------

    async def open_session(self, user: str) -> str:
        """A new session for ``user``; returns the cookie value."""
        tag = user_tag(user)
        sid = secrets.token_urlsafe(32)
        cookie = f"{tag}.{sid}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._session(tag, sid), user, ex=self.session_ttl_s)
            pipe.sadd(self._sessions(tag), cookie)
            pipe.expire(self._sessions(tag), self.session_ttl_s)
            await pipe.execute()
        return cookie

    @staticmethod
    def _split(cookie: str | None) -> tuple[str, str] | None:
        if not cookie or len(cookie) > 1200 or cookie.count(".") != 1:
            return None
        tag, sid = cookie.split(".")
        if not (tag.isascii() and tag.isalnum() and sid and all(c.isalnum() or c in "-_" for c in sid)):
            return None
        return tag, sid

    async def session_user(self, cookie: str | None) -> str | None:
        """The user of a live session (and refresh its TTL); None for a missing, expired or revoked one."""
        parts = self._split(cookie)
        if parts is None:
            return None
        tag, sid = parts
        raw = await self.client.get(self._session(tag, sid))
        if raw is None:
            return None
        user = raw.decode()
        if user_tag(user) != tag:
            return None
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.expire(self._session(tag, sid), self.session_ttl_s)
            pipe.expire(self._sessions(tag), self.session_ttl_s)
            await pipe.execute()
        return user

    async def close_session(self, cookie: str | None) -> str | None:
        """Revoke one session at once; returns its user (None if there was none)."""
        parts = self._split(cookie)
        if parts is None:
            return None
        tag, sid = parts
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.getdel(self._session(tag, sid))
            pipe.srem(self._sessions(tag), cookie)
            raw, _ = await pipe.execute()
        return raw.decode() if raw is not None else None

    async def close_all_sessions(self, user: str, *, keep: str | None = None) -> list[str]:
        """Revoke every session of ``user`` (but ``keep``); returns the revoked cookies."""
        tag = user_tag(user)
        members = [m.decode() for m in await self.client.smembers(self._sessions(tag))]
        revoked = [m for m in members if m != keep and self._split(m) is not None]
        if revoked:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(*[self._session(*self._split(m)) for m in revoked])  # type: ignore[misc]
                pipe.srem(self._sessions(tag), *revoked)
                await pipe.execute()
        return revoked

    async def claim_voice(self, user: str) -> int:
        """The next generation of the person's voice socket (app.web.presence): the newest one wins."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(self._voice(user))
            pipe.expire(self._voice(user), self.session_ttl_s)
            generation, _ = await pipe.execute()
        return int(generation)

    async def voice_generation(self, user: str) -> int | None:
        """The generation of the person's newest voice socket (None when none was claimed lately)."""
        raw = await self.client.get(self._voice(user))
        return int(raw) if raw is not None else None

    async def forget(self, user: str) -> int:
        """Delete the account: passkeys, every session, failed sign-in counters, the passkey
        handle; returns the keys deleted. The person's cookies stop working at once."""
        tag = user_tag(user)
        handle = await self.client.hget(self._account(user), "handle")
        revoked = await self.close_all_sessions(user)
        keys = [self._account(user), self._passkeys(user), self._sessions(tag), self._failures(user),
                self._voice(user)]
        if handle is not None:
            keys.append(self._handle(handle.decode()))
        # Sessions missing from the set (none should be) are found by their tagged prefix.
        keys += [k.decode() async for k in self.client.scan_iter(match=f"{self.ns}:websession:{{{tag}}}:*",
                                                                  count=1000)]
        return len(revoked) + int(await self.client.unlink(*keys))

    # ---- passkeys --------------------------------------------------------------------------

    async def _passkey_list(self, user: str) -> dict[str, dict[str, Any]]:
        raw = await self.client.hgetall(self._passkeys(user))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def register_options(self, user: str, *, new_account: bool, rp_id: str) -> tuple[str, dict[str, Any]]:
        """Start adding a passkey (to a new account named ``user``, or to a signed-in one)."""
        if new_account:
            user = check_name(user)
            if await self.exists(user):
                raise NameTaken("That name already has an account. Sign in instead, or pick another name.")
            handle = bytes_to_base64url(secrets.token_bytes(32))
        else:
            stored = await self.client.hget(self._account(user), "handle")
            if stored is None:
                raise PasskeyFailed("Sign in first.")
            handle = stored.decode()
        existing = await self._passkey_list(user)
        options = generate_registration_options(
            rp_id=rp_id, rp_name=RP_NAME, user_name=user, user_id=base64url_to_bytes(handle),
            user_display_name=user,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.PREFERRED),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in existing],
            timeout=CHALLENGE_TTL_S * 1000)
        challenge_id = secrets.token_urlsafe(24)
        pending = {"kind": "register", "user": user, "new": new_account, "handle": handle, "rp_id": rp_id,
                   "challenge": bytes_to_base64url(options.challenge)}
        await self.client.set(self._challenge(challenge_id), json.dumps(pending), ex=CHALLENGE_TTL_S)
        return challenge_id, json.loads(options_to_json(options))

    async def _take_challenge(self, challenge_id: str, kind: str) -> dict[str, Any]:
        if not challenge_id or len(challenge_id) > 64:
            raise PasskeyFailed(PASSKEY_FAILED)
        raw = await self.client.getdel(self._challenge(challenge_id))
        pending = json.loads(raw) if raw else None
        if not pending or pending.get("kind") != kind:
            raise PasskeyFailed("That passkey request ran out of time. Please try again.")
        return dict(pending)

    async def register_verify(self, challenge_id: str, credential: dict[str, Any], *, rp_id: str, origin: str,
                              signed_in_as: str | None) -> str:
        """Finish adding a passkey; creates the account when it was a passkey sign-up. Returns the user."""
        pending = await self._take_challenge(challenge_id, "register")
        user = str(pending["user"])
        if pending["rp_id"] != rp_id or (not pending["new"] and signed_in_as != user):
            raise PasskeyFailed(PASSKEY_FAILED)
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=base64url_to_bytes(pending["challenge"]),
                expected_rp_id=rp_id, expected_origin=origin)
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise PasskeyFailed(PASSKEY_FAILED) from exc
        if pending["new"]:
            await self._create(user, "", pending["handle"])
        record = {"public_key": bytes_to_base64url(verified.credential_public_key), "sign_count": verified.sign_count,
                  "created_at": self.clock(), "transports": credential.get("response", {}).get("transports") or []}
        await self.client.hset(self._passkeys(user), bytes_to_base64url(verified.credential_id), json.dumps(record))
        return user

    async def signin_options(self, *, rp_id: str) -> tuple[str, dict[str, Any]]:
        """Start a passkey sign-in (discoverable: the authenticator says whose passkey it is)."""
        options = generate_authentication_options(rp_id=rp_id, timeout=CHALLENGE_TTL_S * 1000,
                                                  user_verification=UserVerificationRequirement.PREFERRED)
        challenge_id = secrets.token_urlsafe(24)
        pending = {"kind": "signin", "rp_id": rp_id, "challenge": bytes_to_base64url(options.challenge)}
        await self.client.set(self._challenge(challenge_id), json.dumps(pending), ex=CHALLENGE_TTL_S)
        return challenge_id, json.loads(options_to_json(options))

    async def signin_verify(self, challenge_id: str, credential: dict[str, Any], *, rp_id: str, origin: str,
                            address: str) -> str:
        """Finish a passkey sign-in; returns the user."""
        await self._check_locks(None, address)
        pending = await self._take_challenge(challenge_id, "signin")
        try:
            handle = str(credential["response"]["userHandle"])
            raw = await self.client.get(self._handle(bytes_to_base64url(base64url_to_bytes(handle))))
            user = raw.decode() if raw else None
            passkey = (await self._passkey_list(user)).get(str(credential["rawId"])) if user else None
            if user is None or passkey is None or pending["rp_id"] != rp_id:
                raise PasskeyFailed(PASSKEY_FAILED)
            verified = verify_authentication_response(
                credential=credential, expected_challenge=base64url_to_bytes(pending["challenge"]),
                expected_rp_id=rp_id, expected_origin=origin,
                credential_public_key=base64url_to_bytes(passkey["public_key"]),
                credential_current_sign_count=int(passkey["sign_count"]))
        except (WebAuthnException, ValueError, KeyError, TypeError, PasskeyFailed) as exc:
            await self._failed(None, address)
            raise PasskeyFailed(PASSKEY_FAILED) from exc
        passkey["sign_count"] = verified.new_sign_count
        await self.client.hset(self._passkeys(user), str(credential["rawId"]), json.dumps(passkey))
        return user
