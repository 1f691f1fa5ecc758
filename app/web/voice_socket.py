"""One browser's voice websocket (protocol: ``docs/voice-protocol.md``): checks every frame,
feeds audio and commands to the person's voice session, and sends its events back.

Bad frames get an ``error`` frame and are dropped; the session goes on. A browser that
disconnects mid-turn leaves the session (work already heard is finished and saved); it
does not end it, so the next connection resumes the same conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from app.web.hardening import VoiceLimits
from graphs.session import MAX_MESSAGE_CHARS
from voice.audio import AudioFormatError, validate_pcm16
from voice.base import EventSink, VoiceSession, VoiceUnavailable
from voice.events import INPUT_RATE, AudioOut, ErrorEvent, VoiceEvent

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 32_000  # 1 s of 16 kHz PCM16; the page sends 100 ms frames
MAX_TEXT_FRAME_CHARS = 8_000
YIELD_EVERY = 32  # frames read back to back before letting other tasks run
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


class Hello(BaseModel):
    """The client's first frame: the audio it will send."""

    type: Literal["hello"]
    sample_rate: int = Field(description="Microphone sample rate; must be 16000.")
    format: Literal["pcm16"] = Field("pcm16", description="Sample format; PCM16LE mono.")


class TypedTurn(BaseModel):
    """A typed turn."""

    type: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="What the person typed.")


class Feedback(BaseModel):
    """A thumbs up (``helped``) or down on the last suggestion."""

    type: Literal["feedback"]
    helped: bool = Field(description="True: it helped; False: it did not.")


class Command(BaseModel):
    """``end_of_speech`` (done talking) or ``end`` (end the session)."""

    type: Literal["end_of_speech", "end"]


ClientFrame = TypeAdapter(Annotated[Hello | TypedTurn | Feedback | Command, Field(discriminator="type")])
SessionFactory = Callable[[EventSink], VoiceSession]


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
    return f"{where}: {first['msg']}"


def json_too_deep(text: str, max_depth: int) -> bool:
    """True when ``text`` nests arrays/objects deeper than ``max_depth`` (checked before parsing,
    so a deep frame cannot reach the parser's recursion limit)."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth = depth + 1 if bracket in "[{" else depth - 1
        if depth > max_depth:
            return True
    return False


class TokenBucket:
    """``rate`` events a second on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class VoiceSocket:
    """Serves one websocket for one signed-in person."""

    def __init__(self, websocket: WebSocket, user_id: str, make_session: SessionFactory) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.make_session = make_session
        self.session: VoiceSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        state = getattr(getattr(websocket, "app", None), "state", None)
        self.limits: VoiceLimits = getattr(state, "voice_limits", None) or VoiceLimits()
        self._frames = TokenBucket(self.limits.frames_per_s, self.limits.frame_burst)
        self._turns = TokenBucket(self.limits.turns_per_s, self.limits.turn_burst)
        # Frames over the limit are dropped; this many more (refilling at the frame rate) and
        # the socket is closed. A client a little over the limit never gets here; a flood does
        # within milliseconds.
        self._tolerated = TokenBucket(self.limits.frames_per_s, self.limits.flood_tolerance)
        self.penalized = False
        self._last_rate_error = 0.0

    @property
    def degraded(self) -> bool:
        """True while this socket's voice session runs without memory."""
        return self.session is not None and self.session.degraded

    async def send(self, event: VoiceEvent) -> None:
        """Send one event (audio as a binary frame); a closed socket is ignored."""
        if self.websocket.client_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                if isinstance(event, AudioOut):
                    await self.websocket.send_bytes(event.pcm)
                else:
                    await self.websocket.send_text(event.model_dump_json())

    async def error(self, code: str, message: str) -> None:
        """Tell the client what was wrong with what it sent."""
        await self.send(ErrorEvent(code=code, message=message))

    async def serve(self) -> None:
        """Read frames until the client leaves or ends the session."""
        unbroken = 0
        try:
            while True:
                hello = self.session is None
                timeout = self.limits.hello_timeout_s if hello else self.limits.idle_timeout_s
                try:
                    async with asyncio.timeout(timeout):  # cheaper per frame than wait_for (no task)
                        frame = await self.websocket.receive()
                except TimeoutError:
                    await self._time_out(hello)
                    break
                if frame["type"] == "websocket.disconnect":
                    break
                unbroken += 1
                if unbroken >= YIELD_EVERY:
                    # Frames already buffered are received without ever suspending: let the
                    # other sockets and requests run between batches.
                    unbroken = 0
                    await asyncio.sleep(0)
                if not self._frames.take():
                    if not self._tolerated.take():
                        await self._flooding()
                        break
                    await self._rate_limited()
                    continue
                if frame.get("bytes") is not None:
                    await self._audio(frame["bytes"])
                elif frame.get("text") is not None and await self._command(frame["text"]):
                    break
                if self._runner is not None and self._runner.done():
                    break  # the voice service gave up (it already said so)
        except WebSocketDisconnect:
            pass
        finally:
            await self._leave()

    async def _time_out(self, hello: bool) -> None:
        if hello:
            await self.error("hello_timeout", f"No hello within {self.limits.hello_timeout_s:g} s; reconnect.")
        else:
            await self.error("idle_timeout", f"Nothing arrived for {self.limits.idle_timeout_s:g} s, so I closed "
                             "this connection; your conversation is saved. Reconnect to go on.")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=4408)

    async def _flooding(self) -> None:
        """Far over the frame limit for too long: no page does this. Close (1008) and hold the
        person's reconnects back a while (``app.state.penalties``), so a loop of reconnecting
        floods cannot keep the server busy either."""
        log.warning("voice: closed a socket flooding frames (over %g a second)", self.limits.frames_per_s)
        self.penalized = True
        await self.error("flooding", f"Far more than {self.limits.frames_per_s:g} frames a second, so I closed this "
                         f"connection. Wait {self.limits.flood_penalty_s:g} s before connecting again.")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=1008)

    async def _rate_limited(self) -> None:
        """Drop a frame over the rate limit (cheap: nothing else is done with it); say so at most
        once a second. (Pausing the read instead would let a flood pile up megabytes in the TCP
        buffers that then take minutes to drain at the allowed rate, even after the client left.)"""
        now = time.monotonic()
        if now - self._last_rate_error >= 1.0:
            self._last_rate_error = now
            await self.error("rate_limited", f"Too many frames: at most {self.limits.frames_per_s:g} a second. "
                             "Frames over the limit are dropped.")

    async def _audio(self, data: bytes) -> None:
        if self.session is None:
            await self.error("hello_required", "Send hello (with sample_rate 16000) before audio.")
            return
        try:
            validate_pcm16(data, max_bytes=MAX_FRAME_BYTES)
        except AudioFormatError as exc:
            await self.error(exc.code, str(exc))
            return
        await self.session.push_audio(data)

    async def _command(self, text: str) -> bool:
        """Handle a JSON frame; True when the session ended."""
        limit = min(MAX_TEXT_FRAME_CHARS, self.limits.max_text_frame_bytes)
        if len(text) > limit:
            await self.error("frame_too_large", f"A text frame may hold {limit} characters.")
            return False
        if json_too_deep(text, self.limits.max_json_depth):
            await self.error("bad_frame", f"That frame nests deeper than {self.limits.max_json_depth} levels.")
            return False
        try:
            raw: Any = json.loads(text)
            frame = ClientFrame.validate_python(raw)
        except json.JSONDecodeError:
            await self.error("bad_message", "That frame was not JSON.")
            return False
        except RecursionError:  # not reachable after json_too_deep; never let it escape
            await self.error("bad_frame", "That frame nests too deep.")
            return False
        except ValidationError as exc:
            await self.error("bad_message", f"That frame was not understood ({_problem(exc)}).")
            return False
        if isinstance(frame, Hello):
            await self._hello(frame)
            return False
        if self.session is None:
            await self.error("hello_required", "Send hello (with sample_rate 16000) first.")
            return False
        if isinstance(frame, TypedTurn):
            pending = getattr(self.session, "pending_turns", 0)
            if pending >= self.limits.max_pending_turns or not self._turns.take():
                await self.error("busy", "I'm still on your last messages; send this again when I've answered.")
                return False
            await self.session.send_text(frame.text)
        elif isinstance(frame, Feedback):
            await self.session.feedback(frame.helped)
        elif frame.type == "end_of_speech":
            await self.session.end_of_speech()
        else:
            await self._end()
            return True
        return False

    async def _hello(self, hello: Hello) -> None:
        if hello.sample_rate != INPUT_RATE:
            await self.error("bad_sample_rate", f"Send {INPUT_RATE} Hz mono PCM16 audio; got {hello.sample_rate} Hz. "
                             "Create the AudioContext with sampleRate 16000 (or resample) and say hello again.")
        elif self.session is None:
            self.session = self.make_session(self.send)
            self._runner = asyncio.create_task(self._run(self.session))

    async def _run(self, session: VoiceSession) -> None:
        try:
            await session.run()
        except VoiceUnavailable as exc:
            log.error("voice: %s", exc)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close(code=1011)
        except Exception:
            log.exception("voice: session for a user failed")
            await self.error("internal", "Something went wrong on my side; your progress is saved. Reload to continue.")
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close(code=1011)

    async def _end(self) -> None:
        assert self.session is not None
        await self.session.end()
        await self._stop_runner()
        self.session = None
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=1000)

    async def replace(self) -> None:
        """The same person opened another connection: this one hands over and closes."""
        await self.error("replaced", "You opened sam2voice somewhere else, so this window stopped listening.")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=4409)
        await self._leave()

    async def _leave(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            drop = getattr(session, "drop_queued_turns", None)
            if drop is not None and (dropped := drop()):
                log.info("voice: dropped %d queued typed turn(s) of a socket that closed", dropped)
            try:
                await session.close()
            except Exception:  # leaving must not fail; the work it finished is already saved
                log.exception("voice: closing a session failed")
        await self._stop_runner()

    async def _stop_runner(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
