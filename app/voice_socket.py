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
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from voice.audio import AudioFormatError, validate_pcm16
from voice.base import EventSink, VoiceSession, VoiceUnavailable
from voice.events import INPUT_RATE, AudioOut, ErrorEvent, VoiceEvent

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 32_000  # 1 s of 16 kHz PCM16; the page sends 100 ms frames
MAX_TEXT_FRAME_CHARS = 8_000


class Hello(BaseModel):
    """The client's first frame: the audio it will send."""

    type: Literal["hello"]
    sample_rate: int = Field(description="Microphone sample rate; must be 16000.")
    format: Literal["pcm16"] = Field("pcm16", description="Sample format; PCM16LE mono.")


class TypedTurn(BaseModel):
    """A typed turn."""

    type: Literal["text"]
    text: str = Field(min_length=1, max_length=2000, description="What the person typed.")


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


class VoiceSocket:
    """Serves one websocket for one signed-in person."""

    def __init__(self, websocket: WebSocket, user_id: str, make_session: SessionFactory) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.make_session = make_session
        self.session: VoiceSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self.replaced = False

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
        try:
            while True:
                frame = await self.websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
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
        if len(text) > MAX_TEXT_FRAME_CHARS:
            await self.error("frame_too_large", f"A text frame may hold {MAX_TEXT_FRAME_CHARS} characters.")
            return False
        try:
            raw: Any = json.loads(text)
            frame = ClientFrame.validate_python(raw)
        except json.JSONDecodeError:
            await self.error("bad_message", "That frame was not JSON.")
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
        self.replaced = True
        await self.error("replaced", "You opened sam2voice somewhere else, so this window stopped listening.")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=4409)
        await self._leave()

    async def _leave(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
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
