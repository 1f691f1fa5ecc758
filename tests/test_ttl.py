"""Lifetimes: interventions and reflections expire by their TTL settings."""

from __future__ import annotations

import asyncio

from memories.interventions import InterventionMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack, open_memory
from tests.conftest import memory_settings


async def test_default_ttls_are_30_and_90_days(stack: MemoryStack) -> None:
    interventions = stack.registry.get(InterventionMemory)
    reflections = stack.registry.get(ReflectionMemory)
    assert interventions and reflections
    item_id = await interventions.save("ada", {"text": "x", "user_context": "y"})
    insight_id = await reflections.save("ada", {"insight": "Mornings are easier for Ada"})
    ttl = await stack.client.ttl(interventions.index.key("ada", item_id))
    assert 30 * 86400 - 60 < ttl <= 30 * 86400
    ttl = await stack.client.ttl(reflections.index.key("ada", insight_id))
    assert 90 * 86400 - 60 < ttl <= 90 * 86400


async def test_records_are_gone_after_their_ttl(redis_url: str, minilm) -> None:  # type: ignore[no-untyped-def]
    one_second = 1 / 86400
    settings = memory_settings(intervention_ttl_days=one_second, reflection_ttl_days=one_second)
    stack = await open_memory(redis_url, settings, base_embeddings=(minilm, minilm.model_id, minilm.dims))
    try:
        interventions = stack.registry.get(InterventionMemory)
        reflections = stack.registry.get(ReflectionMemory)
        assert interventions and reflections
        await interventions.save("ada", {"text": "x", "user_context": "stuck", "outcome": "task_completed"})
        await reflections.save("ada", {"insight": "Short-lived insight"})
        assert await interventions.index.count("ada") == 1
        await asyncio.sleep(2.1)
        assert await interventions.similar_successes("ada", "stuck") == []
        assert await reflections.recent("ada") == []
        assert await interventions.success_rates("ada") == {}  # the counters expire with them
    finally:
        await stack.aclose()
