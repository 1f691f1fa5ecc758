"""``sam2voice voice``: a voice session in the terminal, with the machine's microphone and
speaker (sounddevice), or a WAV file in and a WAV file out when there are none."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from voice.audio import read_wav, resample_pcm16, silence, write_wav
from voice.base import VoiceSession
from voice.events import (
    INPUT_RATE,
    OUTPUT_RATE,
    AudioOut,
    Ended,
    ErrorEvent,
    Interrupted,
    MemoryUsed,
    PlanInfo,
    Ready,
    Status,
    ToolRan,
    Transcript,
    VoiceEvent,
)

log = logging.getLogger(__name__)
FRAME_BYTES = INPUT_RATE * 2 // 10  # 100 ms


class TerminalSink:
    """Prints a voice session's events and collects (or plays) its audio."""

    def __init__(self, console: Console, *, play: Any = None) -> None:
        self.console = console
        self.play = play  # a callable taking PCM16 at 24 kHz, or None to collect
        self.audio = bytearray()
        self.turns_answered = 0
        self.answered = asyncio.Event()
        self.errors: list[ErrorEvent] = []

    async def __call__(self, event: VoiceEvent) -> None:
        if isinstance(event, AudioOut):
            if self.play is not None:
                self.play(event.pcm)
            else:
                self.audio.extend(event.pcm)
        elif isinstance(event, Ready):
            self.console.print(f"[dim]Voice session for {event.user} ({event.mode} voice). "
                               "Talk whenever you like; Ctrl+C ends the session.[/]")
        elif isinstance(event, Transcript) and event.final:
            who = "[bold green]you ›[/]" if event.role == "user" else "[bold cyan]sam ›[/]"
            self.console.print(f"{who} {event.text}")
            if event.role == "assistant":
                self.turns_answered += 1
                self.answered.set()
        elif isinstance(event, MemoryUsed) and (event.memories or event.suggested or event.why):
            # "drew on 2 memories; suggested suggest_break — helped you 4 of 5 times when you felt like this"
            said = [f"drew on {len(event.memories)} memories"] if event.memories else []
            if event.suggested:
                said.append(f"suggested {event.suggested}" + (f" — {event.why}" if event.why else ""))
            elif event.why:
                said.append(event.why)
            self.console.print(f"[dim]  {escape('; '.join(said))}[/]")
        elif isinstance(event, PlanInfo) and event.step:
            self.console.print(f"[dim]  current step: {event.step}[/]")
        elif isinstance(event, ToolRan):
            self.console.print(f"[dim]  ran {event.name}[/]")
        elif isinstance(event, Interrupted):
            self.console.print("[dim]  (interrupted)[/]")
        elif isinstance(event, Status) and event.state in ("reconnecting", "degraded"):
            self.console.print(f"[yellow]{event.text}[/]")
        elif isinstance(event, ErrorEvent):
            self.errors.append(event)
            self.console.print(f"[red]{event.message}[/]")
        elif isinstance(event, Ended):
            self.console.print(f"[bold]Session ended.[/] {event.reflection or ''}")


async def run_files(session: VoiceSession, sink: TerminalSink, wav_in: Path, wav_out: Path | None, *,
                    end: bool, reply_timeout_s: float = 120.0) -> None:
    """Feed a WAV file as the microphone (in real time), wait for the reply, write it to a WAV."""
    pcm, rate = read_wav(wav_in)
    pcm = resample_pcm16(pcm, rate, INPUT_RATE) if rate != INPUT_RATE else pcm
    pcm += silence(800, INPUT_RATE)  # the pause that ends the utterance
    runner = asyncio.create_task(session.run())
    try:
        for offset in range(0, len(pcm), FRAME_BYTES):
            await session.push_audio(pcm[offset:offset + FRAME_BYTES])
            await asyncio.sleep(0.1)
        await session.end_of_speech()
        await asyncio.wait_for(sink.answered.wait(), timeout=reply_timeout_s)
        await asyncio.sleep(0.5)  # the rest of the reply's audio
        await (session.end() if end else session.close())
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    if wav_out is not None:
        write_wav(wav_out, bytes(sink.audio), OUTPUT_RATE)


async def run_devices(session: VoiceSession, sink: TerminalSink) -> None:
    """Microphone in, speaker out, until Ctrl+C (then the session ends with its reflection)."""
    import sounddevice as sd  # optional extra; imported here so the CLI works without PortAudio

    loop = asyncio.get_running_loop()
    mic: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
    speaker = sd.RawOutputStream(samplerate=OUTPUT_RATE, channels=1, dtype="int16")

    def captured(data: Any, frames: int, when: Any, status: Any) -> None:
        loop.call_soon_threadsafe(mic.put_nowait, bytes(data))

    sink.play = speaker.write
    runner = asyncio.create_task(session.run())
    with speaker, sd.RawInputStream(samplerate=INPUT_RATE, channels=1, dtype="int16", blocksize=INPUT_RATE // 10,
                                    callback=captured):
        try:
            while not runner.done():
                await session.push_audio(await mic.get())
        finally:
            await session.end()
            runner.cancel()


def audio_devices_problem() -> str | None:
    """Why the terminal cannot use a microphone and speaker here, or None if it can."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        return f"no audio library ({exc}); install the voice extra and PortAudio (apt-get install libportaudio2)"
    try:
        sd.check_input_settings(samplerate=INPUT_RATE, channels=1, dtype="int16")
        sd.check_output_settings(samplerate=OUTPUT_RATE, channels=1, dtype="int16")
    except Exception as exc:  # PortAudio reports missing devices with several error types
        return f"no usable microphone and speaker ({exc})"
    return None
