"""``sam2voice bench voice``: what the memory path adds to a spoken turn.

* ``memory_path_*``: from the moment the person's words are transcribed (the voice model
  starts answering) to the few-shot context sent to the Live session
  (``send_context_update``): the graph's load_context, retrieve_few_shot and
  choose_intervention with ``interventions`` stored for the person, plus the send.
* ``first_audio_*``: from "done talking" (``audioStreamEnd``) to the first reply audio,
  against the local fake Live server (so it measures our path and the loopback, not Gemini).

Real google-genai client, real graph and Redis; only the Live server is the local fake.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import numpy as np
from google import genai
from rich.console import Console

from app.eval.bench.common import machine
from app.eval.bench.graph import SITUATIONS
from app.eval.bench.seeded import seeded_companion
from app.eval.fakes.live import FakeLiveServer, LiveTurn
from app.settings import Settings
from voice.events import Transcript, VoiceEvent
from voice.link import CompanionLink
from voice.live import LiveOptions, LiveVoiceSession

USER = "bench-voice"
FRAME = (3000 * np.sin(2 * np.pi * 220 * np.arange(1600) / 16_000)).astype("<i2").tobytes()  # 100 ms of "speech"


def _stats(name: str, ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {f"{name}_p50_ms": round(cuts[49], 2), f"{name}_p95_ms": round(cuts[94], 2)}


class _Turns:
    """Counts completed assistant turns (the sink of the benchmarked session)."""

    def __init__(self) -> None:
        self.done = 0
        self.changed = asyncio.Event()

    async def __call__(self, event: VoiceEvent) -> None:
        if isinstance(event, Transcript) and event.role == "assistant" and event.final:
            self.done += 1
            self.changed.set()

    async def wait(self, n: int) -> None:
        while self.done < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


async def run_voice_bench(settings: Settings, *, turns: int, interventions: int,
                          console: Console | None) -> dict[str, Any]:
    """Run the voice benchmark; returns a JSON-ready dict (progress on ``console`` if given)."""
    say = console.log if console else (lambda *_: None)
    async with seeded_companion(settings, prefix="benchv", user=USER, interventions=interventions,
                                say=say) as (companion, where):
        link = CompanionLink(companion.session(USER, seed="bench"))
        deps = companion.deps
        async with FakeLiveServer() as fake:
            client = genai.Client(api_key="bench", http_options=fake.http_options())
            sink = _Turns()
            session = LiveVoiceSession(link, client, sink, tools=deps.tools,
                                       options=LiveOptions(checkin_poll_s=60))
            runner = asyncio.create_task(session.run())
            await fake.wait_until(lambda: len(fake.setups) >= 1, timeout=30)
            say(f"timing {turns} spoken turns (+5 warm-up) against the fake Live server ...")
            for i in range(turns + 5):
                fake.script(LiveTurn(transcript=SITUATIONS[i % len(SITUATIONS)],
                                     reply="Okay, one tiny step.", audio_ms=300))
                for _ in range(4):
                    await session.push_audio(FRAME)
                await session.end_of_speech()
                await sink.wait(i + 1)
                while session._tasks:  # noqa: SLF001 - let this turn's graph run finish before the next
                    await asyncio.sleep(0.005)
                if i == 4:
                    session.metrics = {"memory_path_ms": [], "first_audio_ms": []}
            await session.end()
            await asyncio.wait_for(runner, 10)
        metrics = session.metrics
        return {
            "turns": turns, "interventions": interventions, "redis": where, "machine": machine(),
            "context_updates_sent": len(metrics["memory_path_ms"]),
            **_stats("memory_path", metrics["memory_path_ms"]), **_stats("first_audio", metrics["first_audio_ms"]),
            "target_memory_path_p95_ms": 20,
        }
