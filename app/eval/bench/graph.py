"""``sam2voice bench graph``: what the companion graph itself costs per turn.

* ``turn_overhead_*``: one whole graph turn (load context, retrieve few-shot, choose,
  tools, respond, record outcome, Redis checkpoint) minus the chat model's own time, with
  the deterministic template model, for a person with ``interventions`` stored.
* ``understand_*``: what the understanding step adds to a turn (heads, safety gate and rules on the
  turn's one embedding; the embedding itself is timed apart as ``embed_*``, and reused by retrieval).
* ``understand_branch_*``: what the tuned top layers add to the turn's MiniLM pass (the
  understanding vector; the retrieval embedding comes out of the same pass). The step's
  whole added cost is about ``understand`` + ``understand_branch``.
* ``local_reply_p50_ms``: one whole turn with the offline SmolLM2 model, as a person waits for it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from rich.console import Console

from app.companion import Companion
from app.eval.bench.common import machine
from app.eval.bench.seeded import seeded_companion
from app.settings import Settings
from graphs.models.factory import build_chat_model
from graphs.session import CompanionSession
from memories.stack import MemoryStack

USER = "bench-user"
SITUATIONS = [
    "I can't get started on my report, it feels huge",
    "Everything is too loud and I'm overwhelmed",
    "I keep checking my phone instead of studying",
    "I'm so annoyed with myself, I wasted the morning",
    "The dishes are piling up and I'm avoiding them",
]
ANSWERS = ["That helped, I got started.", "No, that didn't help, I gave up."]


def _stats(name: str, ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {f"{name}_p50_ms": round(cuts[49], 2), f"{name}_p95_ms": round(cuts[94], 2)}


def _branch_cost(deps: Any, messages: int = 200) -> dict[str, float]:
    """What the understanding encoder's tuned branch adds to the turn's MiniLM pass: the same
    corpus messages (distinct, so no cache answers) embedded plainly and with the branch."""
    from graphs.understanding.corpus import Split, load_corpus
    from memories.embeddings import LocalMiniLMEmbeddings

    texts = [i.text for i in load_corpus(heldout=False)[Split.VALIDATION][:messages]]
    plain, tuned = LocalMiniLMEmbeddings(), deps.understanding.encoder.local
    added = []
    for text in texts[:10]:  # warm-up
        plain.embed_query(text)
        tuned.embed_with_tuned([text])
    for text in texts:
        start = time.perf_counter()
        plain.embed_query(text)
        middle = time.perf_counter()
        tuned.embed_with_tuned([text])
        added.append((time.perf_counter() - middle - (middle - start)) * 1000)
    return _stats("understand_branch", added)


async def _turns(session: CompanionSession, turns: int) -> dict[str, list[float]]:
    """``turns`` timed turns (after 10 warm-up ones): overhead (all but the chat model's time) and steps."""
    timed: dict[str, list[float]] = {"turn_overhead": [], "understand": [], "embed": []}
    for i in range(turns + 10):
        text = SITUATIONS[i % len(SITUATIONS)] if i % 2 == 0 else ANSWERS[(i // 2) % 2]
        start = time.perf_counter()
        result = await session.send(text)
        total = (time.perf_counter() - start) * 1000
        model = result.timings.get("model_reply", 0.0) + result.timings.get("model_propose", 0.0)
        if i >= 10:
            timed["turn_overhead"].append(total - model)
            timed["understand"].append(result.timings.get("understand", 0.0))
            timed["embed"].append(result.timings.get("embed", 0.0))
    return timed


async def _local_replies(stack: MemoryStack, settings: Settings, turns: int) -> dict[str, float]:
    """Whole turns with the offline chat model (its reply time dominates)."""
    offline = await Companion.assemble(stack, settings, chat_model=build_chat_model("local"))
    local = offline.session(USER, seed="bench")
    await local.send("hello")  # loads the model
    ms = []
    for i in range(turns):
        start = time.perf_counter()
        await local.send(SITUATIONS[i % len(SITUATIONS)] if i % 2 == 0 else ANSWERS[i % 2])
        ms.append((time.perf_counter() - start) * 1000)
    return {"local_reply_p50_ms": round(statistics.median(ms), 1), "local_reply_max_ms": round(max(ms), 1)}


async def run_graph_bench(settings: Settings, *, interventions: int, turns: int, local_turns: int,
                          console: Console | None) -> dict[str, Any]:
    """Run the graph benchmark; returns a JSON-ready dict (progress on ``console`` if given)."""
    say = console.log if console else (lambda *_: None)
    async with seeded_companion(settings, prefix="benchg", user=USER, interventions=interventions,
                                say=say) as (companion, where):
        stack = companion.stack
        session = companion.session(USER, seed="bench")
        await session.open()
        timed = await _turns(session, turns)
        say(f"{turns} template-model turns timed")
        figures: dict[str, Any] = {**{k: v for name, ms in timed.items() for k, v in _stats(name, ms).items()},
                                   **_branch_cost(companion.deps)}
        if local_turns:
            say("loading the offline chat model ...")
            figures.update(await _local_replies(stack, settings, local_turns))
            say(f"{local_turns} offline-model turns timed")
    return {**figures, "target_turn_overhead_p95_ms": 20.0, "target_understand_p95_ms": 3.0,
            "interventions": interventions, "turns": turns,
            "local_turns": local_turns, "redis": where, "machine": machine()}
