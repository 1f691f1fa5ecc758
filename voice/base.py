"""What every voice session offers its front end (the web server, the terminal), whichever
engine speaks: Gemini Live (``voice.live``) or offline speech (``voice.offline``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from voice.events import VoiceEvent

EventSink = Callable[[VoiceEvent], Awaitable[None]]


class VoiceUnavailable(RuntimeError):
    """The voice engine failed and could not be brought back (memory writes were kept)."""


class VoiceSession(Protocol):
    """One person's voice conversation; events go to the sink given at construction."""

    @property
    def degraded(self) -> bool:
        """True while memory is unavailable (the last turn ran without it)."""

    async def run(self) -> None:
        """Open the session and serve it until :meth:`end` (raises VoiceUnavailable if it cannot)."""

    async def push_audio(self, pcm: bytes) -> None:
        """Microphone audio: PCM16LE mono at 16 kHz."""

    async def end_of_speech(self) -> None:
        """The person says they are done talking."""

    async def send_text(self, text: str) -> None:
        """A typed turn."""

    async def feedback(self, helped: bool) -> None:
        """A thumbs up (helped) or down on the last suggestion."""

    async def close(self) -> None:
        """Leave without ending (e.g. the page closed): work in flight is finished and saved."""

    async def end(self) -> str | None:
        """End the session (the reflect step runs); returns the reflection."""
