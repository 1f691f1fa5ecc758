"""Redis unavailable: every memory call fails fast with MemoryUnavailable, never hangs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from app.embedded_redis import EmbeddedRedis
from memories.connection import connect, unavailable_as_typed_error
from memories.errors import MemoryBusy, MemoryUnavailable
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
    server = EmbeddedRedis(tmp_path)
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


async def test_a_busy_pool_waits_for_a_connection_instead_of_failing(redis_url: str) -> None:
    # redis-py's default pool raised "Too many connections" (a ConnectionError, so "memory offline")
    # as soon as more commands ran at once than it had connections: 22 of 200 turns at 50 people.
    client = connect(redis_url, max_connections=2, pool_timeout_s=5.0)
    try:
        key = f"empty-{uuid.uuid4().hex}"  # BLPOP on an empty list holds its connection for the timeout
        replies = await asyncio.gather(*(client.blpop([key], timeout=0.05) for _ in range(12)))
        assert replies == [None] * 12
    finally:
        await client.aclose()


async def test_a_pool_wait_that_runs_out_is_load_not_an_outage(redis_url: str) -> None:
    client = connect(redis_url, max_connections=1, pool_timeout_s=0.05)
    try:
        slow = asyncio.create_task(client.blpop([f"empty-{uuid.uuid4().hex}"], timeout=0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(MemoryBusy, match="1 Redis connections stayed busy"):
            await unavailable_as_typed_error(client.ping)()
        await slow
    finally:
        await client.aclose()
    assert not issubclass(MemoryBusy, ConnectionError)  # so the session never reads it as an outage


async def test_a_pooled_connection_survives_a_server_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    client = connect(server.start())
    try:
        await client.set("k", "v")
        server.stop()
        server.start()  # the pooled connection died with the old server; one retry replaces it
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
        server.stop()


async def test_a_redis_bug_is_raised_and_logged_not_taken_for_an_outage(
    redis_url: str, minilm: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.companion_fixtures import fresh_namespace, open_rig

    async with open_rig(redis_url, minilm, fresh_namespace(), tmp_path) as rig:  # type: ignore[arg-type]
        session = rig.session("maya")
        await session.send("hi")

        async def broken(*args: object, **kwargs: object) -> object:
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

        rig.deps.store.pop_due = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="graphs.session"), pytest.raises(ResponseError):
            await session.send("what's next?")
        assert "turn failed" in caplog.text and "WRONGTYPE" in caplog.text
        assert session._fallback is None  # not degraded: a bug is not "memory offline"
