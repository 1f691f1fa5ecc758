"""Which voice a process speaks with, and how a person's voice session is put together.

Shared by ``sam2voice serve`` and ``sam2voice voice``: Gemini Live when a key is set,
otherwise the offline speech stack (the ``voice`` extra), always over the same graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from google import genai

from app.companion import Companion
from app.settings import Settings
from voice.base import EventSink, VoiceSession
from voice.link import CompanionLink
from voice.live import LiveOptions, LiveVoiceSession

if TYPE_CHECKING:  # the offline speech stack is an optional extra: imported only where it is used
    from voice.speech import SpeechToText, TextToSpeech

VoiceMode = Literal["live", "offline"]
OfflineSpeech = tuple["SpeechToText", "TextToSpeech"]


class VoiceSetupError(RuntimeError):
    """The chosen voice cannot run here (e.g. the offline speech extra is not installed)."""


def live_client(settings: Settings) -> genai.Client | None:
    """A google-genai client for Gemini Live when a key is set (honours GOOGLE_GEMINI_BASE_URL)."""
    return genai.Client(api_key=settings.google_key) if settings.google_key else None


def offline_speech() -> OfflineSpeech:
    """Speech-to-text and text-to-speech engines (models load on first use)."""
    try:
        from voice.speech import SpeechToText, TextToSpeech
    except ImportError as exc:  # the optional extra is missing
        raise VoiceSetupError(f"offline voice needs the voice extra: pip install 'sam2voice[voice]' ({exc})") from exc
    return SpeechToText(), TextToSpeech()


def live_options(settings: Settings) -> LiveOptions:
    """Live session options from the settings."""
    return LiveOptions(model=settings.live_model, voice=settings.live_voice)


def session_factory(companion: Companion, user_id: str, *, mode: VoiceMode, client: genai.Client | None,
                    options: LiveOptions, speech: OfflineSpeech | None) -> Callable[[EventSink], VoiceSession]:
    """How a front end gets the person's voice session once it knows where events go."""
    def make(sink: EventSink) -> VoiceSession:
        link = CompanionLink(companion.session(user_id))
        if mode == "live":
            if client is None:
                raise VoiceSetupError("Gemini Live needs GOOGLE_API_KEY")
            return LiveVoiceSession(link, client, sink, tools=companion.deps.tools, options=options)
        from voice.offline import OfflineVoiceSession

        if speech is None:
            raise VoiceSetupError("offline voice was not set up")
        stt, tts = speech
        return OfflineVoiceSession(link, sink, stt=stt, tts=tts)
    return make
