"""PCM16 helpers: validate frames, resample, measure loudness, read and write WAV files.

All audio inside sam2voice is 16-bit signed little-endian mono PCM ("PCM16") in `bytes`;
the microphone side runs at 16 kHz and the voice side at 24 kHz (docs/voice-protocol.md).
"""

from __future__ import annotations

import functools
import logging
import math
import wave
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Bandlimited-interpolation kernel: zero crossings of the sinc on each side and the Kaiser
# window's beta. Measured for 48 kHz -> 16 kHz: flat to 6 kHz, -6 dB at 7.5 kHz, at least
# 42 dB down from 8 kHz up (so aliases stay well under speech), with ~36 taps per output
# sample when upsampling (~100 when going 48 kHz -> 16 kHz).
_SINC_ZEROS = 16
_KAISER_BETA = 8.6
# Put the low-pass cut-off a little under the lower Nyquist frequency, so the filter's
# transition band ends before the folding point instead of straddling it.
_ROLLOFF = 0.94
# Output samples computed per block: bounds the (block x taps) matrix to a few MB.
_BLOCK = 8192


class AudioFormatError(ValueError):
    """Audio that is not the PCM16 we accept; `code` is the protocol's error code."""

    code = "bad_audio"


class BadFrame(AudioFormatError):
    """A PCM16 frame with an odd number of bytes (half a sample)."""

    code = "bad_frame"


class FrameTooLarge(AudioFormatError):
    """A PCM16 frame over the size limit."""

    code = "frame_too_large"


class UnsupportedWav(AudioFormatError):
    """A WAV file whose encoding we cannot convert to PCM16 mono."""

    code = "unsupported_wav"


def validate_pcm16(frame: bytes, *, max_bytes: int) -> None:
    """Raise `BadFrame` or `FrameTooLarge` unless `frame` is whole PCM16 samples within `max_bytes`."""
    if len(frame) > max_bytes:
        raise FrameTooLarge(f"audio frame of {len(frame)} bytes is over the limit of {max_bytes} bytes")
    if len(frame) % 2:
        raise BadFrame(f"audio frame of {len(frame)} bytes is not whole 16-bit samples (odd length)")


def _samples(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise BadFrame(f"PCM16 data of {len(pcm)} bytes is not whole 16-bit samples (odd length)")
    return np.frombuffer(pcm, dtype="<i2")


def _to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


@functools.lru_cache(maxsize=8)
def _kernel_table(src_rate: int, dst_rate: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Filter taps for each of the `up` fractional positions an output sample can fall on."""
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    cutoff = min(1.0, dst_rate / src_rate) * _ROLLOFF  # fraction of the input's Nyquist frequency
    half_width = int(np.ceil(_SINC_ZEROS / cutoff))  # in input samples: wider when downsampling
    taps = np.arange(-half_width + 1, half_width + 1)
    dist = (np.arange(up) / up)[:, None] - taps[None, :]  # output position minus input sample index
    ratio = np.clip(dist / (half_width + 1), -1.0, 1.0)
    window = np.i0(_KAISER_BETA * np.sqrt(1.0 - ratio**2)) / np.i0(_KAISER_BETA)
    return cutoff * np.sinc(cutoff * dist) * window, taps, up, down


def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample PCM16 mono from `src_rate` to `dst_rate` Hz, keeping the duration.

    Windowed-sinc (Kaiser) bandlimited interpolation, as a polyphase filter: every output
    sample is a weighted sum of the input samples around its position, with weights from a
    table with one row per distinct fractional position (160 rows for 22050 -> 24000).
    Why this and not the alternatives: linear interpolation needs no filter but aliases hiss
    into speech when downsampling and dulls it when upsampling; FFT resampling is a
    brick-wall filter but assumes the clip loops, which clicks at the edges. Here the
    cut-off sits just under min(src, dst)/2, so downsampling low-passes (anti-aliasing) with
    the same code, and any pair of integer rates works. It is stateless: resample whole
    utterances, not 20 ms frames, or each frame edge is filtered against zeros.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    x = _samples(pcm).astype(np.float64)
    if src_rate == dst_rate or x.size == 0:
        return pcm
    table, taps, up, down = _kernel_table(src_rate, dst_rate)
    half_width = int(taps[-1])
    n_out = int(round(x.size * dst_rate / src_rate))
    padded = np.concatenate([np.zeros(half_width), x, np.zeros(half_width + 1)])
    out = np.empty(n_out)
    for start in range(0, n_out, _BLOCK):
        n = np.arange(start, min(start + _BLOCK, n_out), dtype=np.int64)
        base, phase = np.divmod(n * down, up)  # input sample at or before each output, and where
        window = padded[base[:, None] + (taps + half_width)[None, :]]
        out[start : start + n.size] = np.einsum("ij,ij->i", window, table[phase])
    return _to_pcm16(out)


def pcm16_rms(pcm: bytes) -> float:
    """Root-mean-square level of PCM16 audio as a fraction of full scale (0.0 silence .. ~1.0)."""
    x = _samples(pcm)
    if x.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) / 32768.0


def silence(ms: int, rate: int) -> bytes:
    """`ms` milliseconds of digital silence as PCM16 at `rate` Hz."""
    return bytes(2 * int(rate * ms / 1000))


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Read a PCM WAV file as (PCM16 mono bytes, sample rate).

    8-bit (unsigned), 24- and 32-bit integer samples are converted to 16-bit and several
    channels are averaged to mono; compressed or float WAVs raise `UnsupportedWav`.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise UnsupportedWav(f"{path}: not a PCM WAV file we can read ({exc}); convert it with "
                             "'sox IN -b 16 -e signed-integer OUT.wav'") from exc
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16  # sign-extend, keep top 16 bits
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.int64) >> 16
    else:
        raise UnsupportedWav(f"{path}: {8 * width}-bit samples are not supported")
    if channels > 1:
        samples = samples[: samples.size - samples.size % channels].reshape(-1, channels).mean(axis=1)
    logger.debug("read %s: %d Hz, %d channel(s), %d-bit", path, rate, channels, 8 * width)
    return _to_pcm16(np.asarray(samples, dtype=np.float64)), rate


def write_wav(path: str | Path, pcm: bytes, rate: int) -> Path:
    """Write PCM16 mono `pcm` at `rate` Hz to a WAV file and return its path."""
    _samples(pcm)  # reject half samples before writing a broken file
    path = Path(path)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path
