"""Lifetimes: interventions and reflections expire by their TTL settings, and so do the
conversations (checkpoint threads) of ended sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langchain_core.messages import HumanMessage

from graphs.configuration import CompanionSettings
from memories.interventions import InterventionMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack, open_memory
from tests.companion_fixtures import Rig, build_rig
from tests.conftest import memory_settings

DAY = 86400


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


@asynccontextmanager
async def companion(stack: MemoryStack, data_dir: Path, **settings: object) -> AsyncIterator[Rig]:
    yield await build_rig(stack, data_dir, companion=CompanionSettings(**settings))  # type: ignore[arg-type]


async def keys_of(rig: Rig, thread_id: str) -> list[str]:
    """Every key that names the thread, found by scanning (not by the code under test)."""
    return sorted([key.decode() async for key in rig.stack.client.scan_iter(match=f"*{thread_id}*", count=1000)])


async def ttls_of(rig: Rig, thread_id: str) -> dict[str, int]:
    return {key: await rig.stack.client.ttl(key) for key in await keys_of(rig, thread_id)}


async def test_an_ended_sessions_thread_expires_after_30_days(stack: MemoryStack, data_dir: Path) -> None:
    async with companion(stack, data_dir) as rig:
        session = rig.session("ada")
        turn = await session.send("I can't get myself to start my essay")
        # A turn writes its checkpoint only at the end (durability "exit"); pending writes are
        # left by a run that stopped half-way (an interrupt), so make some.
        snapshot = await rig.graph.aget_state(session.config)
        await rig.graph.checkpointer.aput_writes(snapshot.config, [("notice", "half-way")], "task-1")
        before = await ttls_of(rig, turn.thread_id)
        # The checkpoint, the pending-write keys and their registry; nothing expires while it goes on.
        assert any(key.startswith("checkpoint:") for key in before)
        assert any(key.startswith("checkpoint_write:") for key in before)
        assert any(key.startswith("write_keys_zset:") for key in before)
        assert set(before.values()) == {-1}

        await session.end()
        ended = await ttls_of(rig, turn.thread_id)
        assert ended.keys() >= before.keys()  # the end's own writes expire too
        assert all(30 * DAY - 60 < ttl <= 30 * DAY for ttl in ended.values()), ended

        following = await session.send("hello again")  # a new session: a new thread, no TTL
        assert following.thread_id != turn.thread_id
        assert set((await ttls_of(rig, following.thread_id)).values()) == {-1}


async def test_a_thread_used_again_before_it_expires_still_works(stack: MemoryStack, data_dir: Path) -> None:
    async with companion(stack, data_dir) as rig:
        session = rig.session("ada")
        turn = await session.send("I can't get myself to start my essay")
        await session.end()
        config = {"configurable": {"thread_id": turn.thread_id, "user_id": "ada"}}
        # e.g. a second process that still had the session open when this one ended it
        resumed = rig.session("ada")
        resumed.thread_id = turn.thread_id
        reply = await resumed.run({"messages": [HumanMessage("still stuck on the essay")], "live": None})
        assert reply["reply"]
        said = [m.content for m in (await rig.graph.aget_state(config)).values["messages"] if m.type == "human"]
        assert said[0] == "I can't get myself to start my essay" and said[-1] == "still stuck on the essay"
        assert all(0 < ttl <= 30 * DAY for ttl in (await ttls_of(rig, turn.thread_id)).values())


async def test_an_ended_thread_is_gone_after_its_ttl(stack: MemoryStack, data_dir: Path) -> None:
    async with companion(stack, data_dir, ended_thread_ttl_days=1 / DAY) as rig:
        session = rig.session("ada")
        turn = await session.send("I can't get myself to start my essay")
        await session.end()
        await asyncio.sleep(1.5)
        assert await keys_of(rig, turn.thread_id) == []
        config = {"configurable": {"thread_id": turn.thread_id, "user_id": "ada"}}
        assert (await rig.graph.aget_state(config)).values == {}


async def test_ended_threads_can_be_kept_until_forget(stack: MemoryStack, data_dir: Path) -> None:
    async with companion(stack, data_dir, ended_thread_ttl_days=None) as rig:
        session = rig.session("ada")
        turn = await session.send("I can't get myself to start my essay")
        await session.end()
        assert set((await ttls_of(rig, turn.thread_id)).values()) == {-1}


def test_the_ended_thread_ttl_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.settings import Settings

    monkeypatch.delenv("SAM2VOICE_COMPANION__ENDED_THREAD_TTL_DAYS", raising=False)
    assert Settings().companion.ended_thread_ttl_days == 30
    monkeypatch.setenv("SAM2VOICE_COMPANION__ENDED_THREAD_TTL_DAYS", "7")
    assert Settings().companion.ended_thread_ttl_days == 7
    monkeypatch.setenv("SAM2VOICE_COMPANION__ENDED_THREAD_TTL_DAYS", "never")
    assert Settings().companion.ended_thread_ttl_days is None
