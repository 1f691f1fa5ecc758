"""Memory statistics (``memories/stats.py``): records per element, index sizes and the
embedding cache's hit rate, computed on the real server; logged to Weave only when tracing is
on, and offline a no-op that touches no network (``WEAVE_DISABLED``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import app.companion as companion_module
from app.companion import Companion
from app.settings import Settings
from graphs.models.template import TemplateChatModel
from graphs.tracing import init_tracing
from memories.embeddings import CachedEmbeddings, LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from memories.stats import cache_stats, memory_stats, person_counts
from memories.tracing import weave
from tests.conftest import element


async def test_counts_per_element_and_index_sizes(stack: MemoryStack) -> None:
    interventions = element(stack, InterventionMemory)
    for said in ("I can't start the dishes", "my desk is a mess"):
        await interventions.save("maya", {"text": "Rinse one cup.", "user_context": said})
    await interventions.save("sam", {"text": "One line first.", "user_context": "I can't write"})
    await element(stack, ReflectionMemory).save("maya", {"insight": "Tiny steps help maya with dishes."})

    stats = await memory_stats(stack.registry)
    sizes = {s.element: s for s in stats.indexes}
    assert list(sizes) == list(stack.registry.elements)
    assert sizes["interventions"].documents == 3 and sizes["reflections"].documents == 1
    assert sizes["profile"].documents == 0 and sizes["interventions"].vector_mb > 0
    assert all(s.index.startswith(stack.registry.backend.settings.namespace) for s in stats.indexes)
    assert await person_counts(stack.registry, "maya") == {"profile": 0, "interventions": 2, "reflections": 1,
                                                           "feedback": 0, "current_state": 0}
    assert (await person_counts(stack.registry, "sam"))["interventions"] == 1
    assert "maya" not in stats.model_dump_json() and "dishes" not in stats.model_dump_json()  # counts only


async def test_the_cache_hit_rate(minilm: LocalMiniLMEmbeddings) -> None:
    embeddings = CachedEmbeddings(minilm, model_id=minilm.model_id, dims=minilm.dims, cache=None)
    assert cache_stats(embeddings).hit_rate is None  # nothing looked up yet
    for text in ("I can't start", "I can't start", "I can't start", "my desk"):
        await embeddings.aembed_query(text)
    stats = cache_stats(embeddings)
    assert (stats.hits, stats.misses, stats.hit_rate) == (2, 2, 0.5)


async def test_offline_the_weave_logging_is_a_no_op(stack: MemoryStack) -> None:
    assert os.environ.get("WEAVE_DISABLED") == "true" and not os.environ.get("WANDB_API_KEY")
    assert init_tracing("sam2voice-test") is False  # no key: tracing stays off, nothing prompts
    stats = await memory_stats(stack.registry)  # the op runs untraced and just returns the figures
    assert stats.cache.hits >= 0 and weave.get_client() is None  # no weave client: nothing was sent


@pytest.mark.parametrize("tracing", [False, True])
async def test_the_companion_logs_statistics_only_with_tracing(
        tracing: bool, monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> None:
    monkeypatch.setattr(companion_module, "init_tracing", lambda project: tracing)  # weave itself stays disabled
    logged: list[object] = []

    async def counted(registry: object) -> None:
        logged.append(registry)

    monkeypatch.setattr(companion_module, "log_memory_stats_once", counted)
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, weave_stats_interval_s=3600,
                        memory={"namespace": "tstats" + tmp_path.name[-8:].replace("_", "").lower()})
    async with Companion.build(settings, chat_model=TemplateChatModel()):
        await asyncio.sleep(0.05)
        running = {task.get_name() for task in asyncio.all_tasks()}
        assert ("memory-stats" in running) is tracing
        assert len(logged) == int(tracing)  # logged once at start with tracing, never without
    assert len(logged) == 2 * int(tracing)  # ... and once more at close
    assert "memory-stats" not in {task.get_name() for task in asyncio.all_tasks()}
