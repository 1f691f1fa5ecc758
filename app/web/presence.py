"""One person, one live voice window, across every worker and process on one Redis.

Each voice socket that opens claims the next *generation* of its person
(``AccountStore.claim_voice``: an INCR on the person's key) and announces it on the pub/sub
channel ``{ns}:voice:control``. Every server process listens there and closes its own socket
of that person if it holds an older generation (code 4409, "replaced"). Signing out works the
same way: the process that revoked the sessions announces them (as hashes, never the cookies),
and every process closes the sockets opened with them (code 4401). Forgetting a person is
announced too, so every process drops that person's writes still waiting in its outbox.

Pub/sub delivers at most once, so each socket also re-checks every ``recheck_s`` seconds that
its session is still valid and its generation still current; that catches a message lost while
Redis was away, and a session that simply expired. When Redis is down a socket cannot claim a
generation; takeover then works inside this process only, and the re-check catches up later.

Hand-written rather than a library because the whole protocol is these two messages on one
channel; redis-py's ``PubSub`` does the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from app.accounts import AccountStore
from app.web.voice_socket import VoiceSocket
from memories.errors import MemoryBusy

log = logging.getLogger(__name__)
REDIS_TROUBLE = (RedisError, OSError, MemoryBusy)  # down, unreachable, or every connection busy


def session_hash(cookie: str) -> str:
    """What the control channel says instead of a session cookie."""
    return hashlib.sha256(cookie.encode()).hexdigest()[:32]


class Control(BaseModel):
    """A message on the control channel."""

    kind: Literal["takeover", "signout", "forget"]
    user: str = Field(max_length=128)
    generation: int | None = Field(None, description="takeover: the new socket's generation.")
    sessions: list[str] | None = Field(None, description="signout: the revoked sessions' hashes (None: all).")


@dataclass
class Live:
    """One open socket of this process."""

    socket: VoiceSocket
    session: str  # session_hash of the cookie it opened with
    generation: int | None


class VoicePresence:
    """Each signed-in person's one open voice socket, here and in every other process."""

    def __init__(self, accounts: AccountStore, client: aioredis.Redis, namespace: str, *,
                 recheck_s: float = 30.0, on_forget: Callable[[str], object] | None = None) -> None:
        self.accounts = accounts
        self.on_forget = on_forget
        self.client = client
        self.channel = f"{namespace}:voice:control"
        self.recheck_s = recheck_s
        self._open: dict[str, Live] = {}
        self._lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, timeout_s: float = 5.0) -> None:
        """Listen on the control channel (returns once subscribed, or after ``timeout_s``)."""
        self._listener = asyncio.create_task(self._listen(), name="voice-presence")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is not None:
                        await self._on_message(message.get("data"))
            except asyncio.CancelledError:
                raise
            except REDIS_TROUBLE as exc:
                log.warning("voice presence: control channel lost (%s); retrying in %.1f s", exc, delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _on_message(self, data: Any) -> None:
        try:
            control = Control.model_validate(json.loads(data))
        except (ValueError, TypeError, ValidationError):
            log.warning("voice presence: ignored a malformed control message")
            return
        if control.kind == "takeover" and control.generation is not None:
            await self._close_older(control.user, control.generation)
        elif control.kind == "signout":
            await self._close_signed_out(control.user, None if control.sessions is None else set(control.sessions))
        elif control.kind == "forget" and self.on_forget is not None:
            self.on_forget(control.user)

    async def _publish(self, control: Control) -> None:
        try:
            await self.client.publish(self.channel, control.model_dump_json())
        except REDIS_TROUBLE as exc:
            log.warning("voice presence: could not tell other processes (%s)", exc)

    # ---- sockets ---------------------------------------------------------------------------

    async def enter(self, socket: VoiceSocket, cookie: str) -> None:
        """Make ``socket`` (opened with ``cookie``) the person's only connection, everywhere."""
        user = socket.user_id
        try:
            generation: int | None = await self.accounts.claim_voice(user)
        except REDIS_TROUBLE as exc:
            log.warning("voice presence: no generation (%s); takeover is local to this process", exc)
            generation = None
        async with self._lock:
            previous = self._open.get(user)
            self._open[user] = Live(socket, session_hash(cookie), generation)
        if previous is not None:
            await previous.socket.replace()
        if generation is not None:
            await self._publish(Control(kind="takeover", user=user, generation=generation))

    async def leave(self, socket: VoiceSocket) -> None:
        """Forget ``socket`` (if it is still the person's current one here)."""
        async with self._lock:
            if (current := self._open.get(socket.user_id)) is not None and current.socket is socket:
                del self._open[socket.user_id]

    async def sign_out(self, user: str, cookies: set[str] | None = None) -> None:
        """Close the person's socket (4401), here and elsewhere, if opened with one of ``cookies``
        (None: any of theirs)."""
        sessions = None if cookies is None else {session_hash(c) for c in cookies}
        await self._close_signed_out(user, sessions)
        await self._publish(Control(kind="signout", user=user, sessions=None if sessions is None else sorted(sessions)))

    async def forgotten(self, user: str) -> None:
        """Tell every process the person was forgotten (each drops their writes still queued)."""
        await self._publish(Control(kind="forget", user=user))

    async def watch(self, socket: VoiceSocket, cookie: str) -> None:
        """Re-check the socket's session and generation every ``recheck_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.recheck_s)
            try:
                user = await self.accounts.session_user(cookie)
                current = await self.accounts.voice_generation(socket.user_id)
            except REDIS_TROUBLE:
                continue  # Redis away: nothing to learn now; the next check tries again
            live = self._open.get(socket.user_id)
            if user != socket.user_id:
                await self._close_signed_out(socket.user_id, {session_hash(cookie)})
                return
            if live is not None and live.socket is socket and live.generation is not None and current is not None \
                    and current > live.generation:
                await self._close_older(socket.user_id, current)
                return

    async def _take(self, user: str, *, older_than: int | None = None,
                    sessions: set[str] | None = None) -> VoiceSocket | None:
        async with self._lock:
            live = self._open.get(user)
            if live is None:
                return None
            # A socket that could not claim a generation (Redis was away) yields to any claim.
            if older_than is not None and live.generation is not None and live.generation >= older_than:
                return None
            if sessions is not None and live.session not in sessions:
                return None
            del self._open[user]
            return live.socket

    async def _close_older(self, user: str, generation: int) -> None:
        if (socket := await self._take(user, older_than=generation)) is not None:
            await socket.replace()

    async def _close_signed_out(self, user: str, sessions: set[str] | None) -> None:
        if (socket := await self._take(user, sessions=sessions)) is None:
            return
        await socket.error("signed_out", "You signed out, so this window stopped listening.")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.websocket.close(code=4401)
