"""Spoken test audio made on the spot with Debian's espeak-ng and sox (scripts/system-deps.sh).

Synthetic speech is clean and repeatable: enough to check that words survive a round trip
through endpointing and speech-to-text. WAVs get leading silence because a browser's fake
microphone starts playing the file when getUserMedia opens, not when the page listens.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from voice.audio import read_wav

HAVE_SPEECH_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
requires_espeak = pytest.mark.skipif(
    not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are not installed (run: sudo bash scripts/system-deps.sh)"
)
# A clear, slightly slow American voice: espeak's default pace costs Whisper a word or two.
ESPEAK_ARGS = ("-v", "en-us", "-s", "150")


def speak_to_wav(
    text: str, path: str | Path, *, rate: int = 16000, lead_silence_s: float = 1.0, tail_silence_s: float = 0.8
) -> Path:
    """Speak `text` into a PCM16 mono WAV at `rate` Hz with silence before and after; return its path."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        # Text on stdin so a leading "-" is never read as an option.
        subprocess.run(["espeak-ng", *ESPEAK_ARGS, "-w", str(raw)], input=text.encode(), check=True)
        subprocess.run(
            ["sox", "-V1", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(path),
             "pad", str(lead_silence_s), str(tail_silence_s)],
            check=True,
        )
    return path


@functools.lru_cache(maxsize=64)
def speak_pcm(text: str, *, lead_silence_s: float = 0.0, tail_silence_s: float = 0.0) -> bytes:
    """`text` spoken as 16 kHz PCM16 mono bytes (cached: espeak-ng is deterministic)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = speak_to_wav(text, Path(tmp) / "speech.wav", lead_silence_s=lead_silence_s, tail_silence_s=tail_silence_s)
        pcm, rate = read_wav(wav)
    assert rate == 16000, rate
    return pcm
