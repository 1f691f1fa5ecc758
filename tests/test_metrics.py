"""``/metrics`` (Prometheus text format) of ``sam2voice serve``, and the observer hook beneath it:
real typed turns through the real server (offline voice, the real graph and Redis) move the
node histograms, the memory-operation histograms and the outcome and safety counters; labels
carry no user id and no words."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.companion import Companion
from app.settings import Settings
from app.web.metrics import ServerMetrics
from app.web.server import create_app
from memories.tracing import current_observer, observing, traced
from tests.companion_fixtures import Rig
from tests.test_hardening import QuietSpeech
from tests.test_voice_server import next_json, serving, sign_in, voice_socket

SECRET_WORDS = "zanzibar marmalade"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def base(rig: Rig) -> AsyncIterator[str]:
    quiet: Any = QuietSpeech()
    app = create_app(Settings(), companion=Companion(deps=rig.deps, graph=rig.graph), mode="offline",
                     speech=(quiet, quiet))
    async with serving(app) as address:
        yield address


async def scrape(base: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{base}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text, samples(answer.text)


async def typed_turn(ws: Any, text: str) -> str:
    await ws.send(json.dumps({"type": "text", "text": text}))
    while (frame := await next_json(ws, "transcript", timeout=30))["role"] != "assistant":
        pass
    return str(frame["text"])


async def test_typed_turns_move_node_memory_outcome_and_safety_metrics(base: str) -> None:
    _, before = await scrape(base)
    assert value(before, "sam2voice_node_seconds_count", node="load_context", result="ok") == 0
    assert value(before, "sam2voice_active_sockets") == 0

    name = "maya-metrics"
    session = await sign_in(base, name)
    async with voice_socket(base, session) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
        await next_json(ws, "ready")
        await typed_turn(ws, f"I can't start my essay about {SECRET_WORDS}")
        await ws.send(json.dumps({"type": "feedback", "helped": True}))  # settles the suggestion as helped
        assert (await next_json(ws, "feedback", timeout=30))["settled"] is True
        _, during = await scrape(base)
        assert value(during, "sam2voice_active_sockets") == 1
        await typed_turn(ws, "i want to kill myself")  # the safety reply: counted, nothing else
    text, after = await scrape(base)

    for node in ("load_context", "understand", "retrieve_few_shot", "choose_intervention", "respond",
                 "record_outcome"):
        assert value(after, "sam2voice_node_seconds_count", node=node, result="ok") >= 2, node
    assert value(after, "sam2voice_node_seconds_bucket", node="respond", result="ok", le="+Inf") >= 2
    assert value(after, "sam2voice_memory_operation_seconds_count", operation="reflections.load", result="ok") >= 2
    assert value(after, "sam2voice_memory_operation_seconds_count", operation="interventions.neighborhood",
                 result="ok") >= 1
    assert value(after, "sam2voice_memory_operation_seconds_count", operation="interventions.settle",
                 result="ok") >= 1
    assert value(after, "sam2voice_turn_seconds_count", kind="text", result="ok") >= 2
    assert sum(v for (metric, _), v in after.items() if metric == "sam2voice_tool_seconds_count") >= 1
    assert value(after, "sam2voice_turn_seconds_count", kind="feedback", result="ok") == 1
    settled = {dict(labels)["outcome"]: v for (metric, labels), v in after.items()
               if metric == "sam2voice_outcomes_settled_total"}
    assert sum(settled.values()) >= 1 and set(settled) <= {"task_completed", "task_progress", "re_engaged"}
    assert value(after, "sam2voice_safety_events_total") == 1
    assert value(after, "sam2voice_outbox_depth") == 0 and value(after, "sam2voice_degraded_sessions") == 0
    assert value(after, "sam2voice_active_sockets") == 0
    assert value(after, "sam2voice_embedding_cache_lookups_total", result="miss") >= 1
    # Privacy: no user id, no word anyone said, in any label or help text.
    for secret in (name, *SECRET_WORDS.split(), "essay", "kill"):
        assert secret not in text


async def test_each_app_has_its_own_registry(rig: Rig) -> None:
    quiet: Any = QuietSpeech()
    companion = Companion(deps=rig.deps, graph=rig.graph)
    one = create_app(Settings(), companion=companion, mode="offline", speech=(quiet, quiet))
    two = create_app(Settings(), companion=companion, mode="offline", speech=(quiet, quiet))
    one.state.metrics.timed("node", "respond", 0.01, failed=False)
    assert value(samples(one.state.metrics.exposition().decode()), "sam2voice_node_seconds_count",
                 node="respond", result="ok") == 1
    assert value(samples(two.state.metrics.exposition().decode()), "sam2voice_node_seconds_count",
                 node="respond", result="ok") == 0


@traced("probe.operation")
async def probe_operation(fail: bool = False) -> str:
    if fail:
        raise RuntimeError("boom")
    return "done"


async def test_traced_operations_report_to_the_observer_of_their_context_only() -> None:
    metrics = ServerMetrics()
    assert await probe_operation() == "done"  # no observer: runs as before, nothing counted
    with observing(metrics):
        assert current_observer() is metrics
        assert await probe_operation() == "done"
        with pytest.raises(RuntimeError):
            await probe_operation(fail=True)
    assert current_observer() is None
    scraped = samples(metrics.exposition().decode())
    assert value(scraped, "sam2voice_memory_operation_seconds_count", operation="probe.operation", result="ok") == 1
    assert value(scraped, "sam2voice_memory_operation_seconds_count", operation="probe.operation",
                 result="error") == 1
    metrics.counted("outcome_settled", "not-an-outcome")  # an unexpected kind never becomes a new label value
    assert value(samples(metrics.exposition().decode()), "sam2voice_outcomes_settled_total", outcome="other") == 1
