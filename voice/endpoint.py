"""Find where each spoken utterance starts and ends in a continuous PCM16 microphone stream.

Energy based: voice-band (200-4000 Hz) loudness against a noise floor that adapts to the
room. Why not a model VAD:
- `webrtcvad-wheels` 2.0.14 (prebuilt, maintained) installs offline, but it was not clearly
  better. Checked on espeak-ng sentences with 1.5 s between them: both found the two
  utterances in clean audio, white noise down to 10 dB SNR and brown (fan-like) noise at
  13 dB SNR, and both ignored clicks; both merged the two when a loud fan started mid-speech.
  This found speech at -46 dBFS that webrtcvad (mode 3) cut short or split, and webrtcvad's
  mode 0 found nothing at 10 dB SNR. It would be one more compiled dependency for no gain.
- Silero VAD is better in babble, but the `silero-vad` package pulls torch. faster-whisper
  bundles its ONNX model and `SpeechToText` runs it on every finished utterance (its
  `vad_filter`), so a noise burst that gets through here is dropped there cheaply. Deciding
  *when* the person stopped talking needs only "voice-loud versus room-quiet".
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from voice.audio import BadFrame

logger = logging.getLogger(__name__)

FRAME_MS = 20
# Audio kept before the first speech frame and after the last one, so soft onsets
# ("f", "h") and word tails reach speech-to-text.
PAD_MS = 300
# Loudness is measured in the voice band only: fans, traffic and mains hum live mostly
# below it and hiss above it, so band energy separates speech from noise better than RMS.
BAND_HZ = (200.0, 4000.0)
# The noise floor is a low percentile of the frame levels of the last few seconds: speech
# always dips between words and syllables within that window; a steady noise does not, so
# it becomes the floor in about that time. (A percentile, not the minimum: one unusually
# quiet frame of a rumbling noise would otherwise pull the floor down.)
FLOOR_WINDOW_S = 3.0
FLOOR_PERCENTILE = 5
# Until this much audio was heard the floor also assumes a quiet room, so someone who talks
# from the first frame is heard; after it the room's own levels rule.
WARMUP_S = 0.5
# A frame is speech when it is this many times louder than the floor (3x ~ +9.5 dB) ...
SPEECH_RATIO = 3.0
# ... and, once an utterance runs, stays speech down to this fraction of that bar
# (hysteresis), so quiet word endings do not start the end-of-utterance countdown.
HOLD_FRACTION = 0.6


class SpeechEndpointer:
    """Split a continuous PCM16 mono stream into complete utterances.

    Feed microphone audio with `push` as it arrives; each returned item is one utterance
    (speech plus ~0.3 s of padding each side). Call `flush` when the person presses
    "I'm done talking" to end the current utterance at once.

    `threshold` is the quietest voice-band RMS (fraction of full scale; 0.005 ~ -46 dBFS) that
    counts as speech however quiet the room; above it the bar is `SPEECH_RATIO` x the noise floor.
    An utterance needs `min_speech_ms` of speech frames (clicks and coughs do not), ends after
    `end_silence_ms` without speech, and is cut at `max_utterance_s`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        threshold: float = 0.005,
        min_speech_ms: int = 200,
        end_silence_ms: int = 600,
        max_utterance_s: float = 30,
    ) -> None:
        if sample_rate <= 0 or threshold <= 0:
            raise ValueError("sample_rate and threshold must be positive")
        self.sample_rate = sample_rate
        self.threshold = threshold
        self._frame_bytes = 2 * sample_rate * FRAME_MS // 1000
        self._min_speech_frames = max(1, min_speech_ms // FRAME_MS)
        self._end_silence_frames = max(1, end_silence_ms // FRAME_MS)
        self._max_frames = max(1, int(max_utterance_s * 1000) // FRAME_MS)
        self._pad_frames = PAD_MS // FRAME_MS
        self._levels: deque[float] = deque(maxlen=int(FLOOR_WINDOW_S * 1000 / FRAME_MS))
        self._warmup_frames = int(WARMUP_S * 1000 / FRAME_MS)
        frame_samples = self._frame_bytes // 2
        self._window = np.hanning(frame_samples)
        freqs = np.fft.rfftfreq(frame_samples, 1.0 / sample_rate)
        self._band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
        # Scales the band's spectral power back to a mean-square level (Parseval, Hann window).
        self._band_scale = 2.0 / (frame_samples * float(np.sum(self._window**2)))
        self._pending = b""
        self._preroll: deque[bytes] = deque(maxlen=self._pad_frames)
        self._frames: list[bytes] = []  # the utterance being heard (empty when idle)
        self._frame_levels: list[float] = []
        self._silent_run = 0

    @property
    def noise_floor(self) -> float:
        """The current noise floor (voice-band RMS, fraction of full scale)."""
        floor = float(np.percentile(self._levels, FLOOR_PERCENTILE)) if self._levels else 0.0
        if len(self._levels) < self._warmup_frames:
            floor = min(floor, self.threshold / SPEECH_RATIO)
        return floor

    @property
    def in_utterance(self) -> bool:
        """True while an utterance has started and not yet ended."""
        return bool(self._frames)

    def push(self, pcm: bytes) -> list[bytes]:
        """Add microphone audio; return the utterances that ended within it (often none)."""
        if len(pcm) % 2:
            raise BadFrame(f"audio of {len(pcm)} bytes is not whole 16-bit samples (odd length)")
        data = self._pending + pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        done: list[bytes] = []
        for start in range(0, whole, self._frame_bytes):
            utterance = self._on_frame(data[start : start + self._frame_bytes])
            if utterance is not None:
                done.append(utterance)
        return done

    def flush(self) -> bytes | None:
        """End the current utterance now; return it, or None if no speech was heard."""
        if self._frames and self._pending:
            self._frames.append(self._pending)
            self._frame_levels.append(0.0)
        self._pending = b""
        return self._finish(trailing_silence=self._silent_run if self._frames else 0)

    def _level(self, frame: bytes) -> float:
        """Voice-band (BAND_HZ) RMS of one frame, as a fraction of full scale."""
        samples = np.frombuffer(frame, dtype="<i2") / 32768.0
        power = np.abs(np.fft.rfft(samples * self._window)[self._band]) ** 2
        return float(np.sqrt(self._band_scale * np.sum(power)))

    def _on_frame(self, frame: bytes) -> bytes | None:
        level = self._level(frame)
        self._levels.append(level)
        bar = max(self.threshold, SPEECH_RATIO * self.noise_floor)
        if not self._frames:
            if level < bar:
                self._preroll.append(frame)
                return None
            self._frames = [*self._preroll, frame]
            self._frame_levels = [0.0] * len(self._preroll) + [level]
            self._preroll.clear()
            self._silent_run = 0
            return None
        self._frames.append(frame)
        self._frame_levels.append(level)
        self._silent_run = 0 if level >= bar * HOLD_FRACTION else self._silent_run + 1
        if self._silent_run >= self._end_silence_frames:
            return self._finish(trailing_silence=self._silent_run)
        if len(self._frames) >= self._max_frames:
            logger.info("utterance reached %d s; cutting it here", self._max_frames * FRAME_MS // 1000)
            return self._finish(trailing_silence=self._silent_run)
        return None

    def _finish(self, *, trailing_silence: int) -> bytes | None:
        frames, levels = self._frames, self._frame_levels
        self._frames, self._frame_levels, self._silent_run = [], [], 0
        if not frames:
            return None
        # Judge the utterance against the floor as known now: the floor may have risen to a
        # noise that started the utterance (a fan switched on), and then none of it is speech.
        bar = max(self.threshold, SPEECH_RATIO * self.noise_floor)
        speech_frames = sum(level >= bar for level in levels)
        keep = len(frames) - max(0, trailing_silence - self._pad_frames)
        # Frames after the kept padding stay as pre-roll for the next utterance.
        self._preroll.extend(frames[keep:])
        if speech_frames < self._min_speech_frames:
            logger.debug("dropped %d ms of sound with only %d speech frames", len(frames) * FRAME_MS, speech_frames)
            return None
        logger.debug("utterance of %d ms (%d speech frames)", keep * FRAME_MS, speech_frames)
        return b"".join(frames[:keep])
