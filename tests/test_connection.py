"""Redis unavailable: every memory call fails fast with MemoryUnavailable, never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.embedded_redis import EmbeddedRedis
from memories.errors import MemoryUnavailable
from memories.interventions import InterventionMemory
from memories.profile import ProfileMemory
from memories.stack import open_memory
from tests.conftest import free_port, memory_settings


async def test_opening_against_a_dead_server_fails_fast(minilm) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    with pytest.raises(MemoryUnavailable):
        await open_memory(f"redis://127.0.0.1:{free_port()}", base_embeddings=(minilm, minilm.model_id, minilm.dims))
    assert time.monotonic() - start < 3


async def test_calls_fail_fast_while_the_server_is_down_and_data_survives(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    server = EmbeddedRedis(tmp_path, free_port())
    stack = await open_memory(server.start(), memory_settings(), base_embeddings=(minilm, minilm.model_id, minilm.dims))
    interventions = stack.registry.get(InterventionMemory)
    profile = stack.registry.get(ProfileMemory)
    assert interventions and profile
    await interventions.save("u1", {"text": "Step one: open the laptop", "user_context": "I can't start"})
    server.stop()
    try:
        for call in (
            lambda: interventions.similar_successes("u1", "I can't start"),
            lambda: interventions.save("u1", {"text": "x", "user_context": "y"}),
            lambda: interventions.settle("u1", "abc", "task_completed"),
            lambda: profile.get("u1"),
            lambda: profile.update("u1", {"name": "X"}),
            lambda: stack.registry.load("u1", {"message": "I can't start"}),
            lambda: stack.registry.forget("u1"),
        ):
            start = time.monotonic()
            with pytest.raises(MemoryUnavailable):
                await call()
            assert time.monotonic() - start < 3
        server.start()
        found = await interventions.similar_successes("u1", "I can't start")
        assert [e.intervention.text for e in found] == ["Step one: open the laptop"]
    finally:
        await stack.aclose()
        server.stop()
