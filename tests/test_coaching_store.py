"""CoachingStore: plans, check-ins and reminders in Redis, consistent across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from memories.connection import connect
from memories.errors import InvalidInput, MemoryUnavailable, RecordNotFound
from memories.stack import MemoryStack
from tests.conftest import free_port
from tools.store import MAX_SCHEDULED, MAX_STEPS, CoachingStore

T0 = 1_700_000_000.0


@pytest.fixture
def store(stack: MemoryStack) -> CoachingStore:
    return CoachingStore(stack.client, stack.registry.backend.settings.namespace)


@pytest.fixture
async def other_process(redis_url: str, store: CoachingStore) -> AsyncIterator[CoachingStore]:
    """A second store on its own connection, as a second app process would have."""
    client = connect(redis_url)
    yield CoachingStore(client, store.namespace)
    await client.aclose()


async def test_a_plan_is_walked_step_by_step_to_done(store: CoachingStore) -> None:
    saved = await store.save_plan("ada", "clean the kitchen", ["Clear the counter", "Load the dishwasher", "Wipe"],
                                  now=T0)
    assert saved.current_step == "Clear the counter" and not saved.done
    assert await store.plan("ada") == saved
    plan, step = await store.complete_step("ada", now=T0 + 60)
    assert step == "Clear the counter" and plan.current_step == "Load the dishwasher" and plan.completed_at is None
    await store.complete_step("ada", now=T0 + 120)
    plan, step = await store.complete_step("ada", now=T0 + 180)
    assert step == "Wipe" and plan.done and plan.current_step is None and plan.completed_at == T0 + 180
    assert await store.plan("ada") == plan
    with pytest.raises(InvalidInput, match="already done"):
        await store.complete_step("ada")
    with pytest.raises(RecordNotFound):
        await store.complete_step("bob")
    # A new plan replaces the finished one and starts at its first step.
    fresh = await store.save_plan("ada", "laundry", ["Carry the basket", "Start the machine"], now=T0 + 200)
    assert (await store.plan("ada")) == fresh and fresh.current == 0


async def test_plans_are_bounded(store: CoachingStore) -> None:
    with pytest.raises(InvalidInput):
        await store.save_plan("ada", "too much", [f"step {i}" for i in range(MAX_STEPS + 1)])
    with pytest.raises(InvalidInput):
        await store.save_plan("ada", "empty", [])
    with pytest.raises(InvalidInput):
        await store.save_plan("ada", "long step", ["x" * 201])
    assert await store.plan("ada") is None


async def test_two_processes_completing_steps_at_once_never_repeat_or_skip_one(
    store: CoachingStore, other_process: CoachingStore
) -> None:
    steps = [f"step {i}" for i in range(8)]
    await store.save_plan("ada", "race", steps)
    calls = [s.complete_step("ada") for _ in range(5) for s in (store, other_process)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    completed = [r[1] for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert sorted(completed) == steps  # each step exactly once
    assert len(refused) == 2 and all(isinstance(r, InvalidInput) for r in refused)
    assert (await store.plan("ada")).done  # type: ignore[union-attr]


async def test_items_surface_only_when_due_and_only_once(store: CoachingStore) -> None:
    checkin = await store.add_checkin("ada", T0 + 600, "the essay")
    reminder = await store.add_reminder("ada", T0 + 300, "take your medication")
    late = await store.add_reminder("ada", T0 + 3600, "start dinner")
    assert [i.id for i in await store.upcoming("ada")] == [reminder.id, checkin.id, late.id]
    assert [i.id for i in await store.upcoming("ada", limit=1)] == [reminder.id]
    assert await store.pop_due("ada", T0 + 299) == []
    assert await store.pop_due("ada", T0 + 300) == [reminder]
    assert await store.last_checkin_at("ada") is None  # a reminder is not a check-in
    assert await store.pop_due("ada", T0 + 900) == [checkin]
    assert await store.last_checkin_at("ada") == T0 + 900  # when the check-in reached the person
    assert await store.pop_due("ada", T0 + 900) == []
    assert [i.id for i in await store.upcoming("ada")] == [late.id]
    assert checkin.message == "Check-in: how is the essay going?"
    assert reminder.message == "Reminder: take your medication."


async def test_two_processes_popping_at_once_each_get_different_items(
    store: CoachingStore, other_process: CoachingStore
) -> None:
    added = [await store.add_reminder("ada", T0 + i, f"reminder {i}") for i in range(20)]
    added += [await other_process.add_checkin("ada", T0 + i, f"checkin {i}") for i in range(20)]
    rounds = [s.pop_due("ada", T0 + 10 + r) for r in range(10) for s in (store, other_process)]
    popped = [item.id for batch in await asyncio.gather(*rounds) for item in batch]
    assert sorted(popped) == sorted(i.id for i in added)  # everything once, nothing twice
    assert await store.upcoming("ada", limit=50) == []


async def test_scheduled_items_are_bounded_per_person(store: CoachingStore) -> None:
    for i in range(MAX_SCHEDULED):
        await (store.add_checkin if i % 2 else store.add_reminder)("ada", T0 + i, f"item {i}")
    with pytest.raises(InvalidInput, match="already"):
        await store.add_reminder("ada", T0, "one too many")
    for bad_text, bad_time in (("   ", T0), ("x", float("nan")), ("x", -1.0)):
        with pytest.raises(InvalidInput):
            await store.add_checkin("bob", bad_time, bad_text)
    await store.add_reminder("bob", T0, "bob has room")  # the bound is per person
    await store.pop_due("ada", T0 + 1)
    await store.add_checkin("ada", T0, "room again")  # popping frees room


async def test_people_are_isolated_and_can_be_forgotten_and_exported(store: CoachingStore) -> None:
    await store.save_plan("ada", "essay", ["Open the document", "Write one sentence", "Save"])
    await store.add_checkin("ada", T0, "the essay")
    await store.add_reminder("ada", T0 + 60, "drink water")
    await store.pop_due("ada", T0)
    await store.add_reminder("ada:x", T0, "a look-alike id")
    assert await store.plan("bob") is None and await store.upcoming("bob") == []
    assert await store.last_checkin_at("bob") is None
    exported = await store.export("ada")
    assert exported["plan"]["steps"][0] == "Open the document" and exported["last_checkin_at"] == T0
    assert [i["text"] for i in exported["scheduled"]] == ["drink water"]
    assert await store.forget("ada") == 4  # plan, reminders, last check-in, applied keys (check-ins all popped)
    assert await store.export("ada") == {"plan": None, "scheduled": [], "last_checkin_at": None, "safety_events": []}
    assert [i.text for i in await store.upcoming("ada:x")] == ["a look-alike id"]
    with pytest.raises(InvalidInput):
        await store.plan("bad\nid")


async def test_redis_down_is_a_typed_error() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}", connect_timeout_s=0.2)
    store = CoachingStore(client, "tdown")
    try:
        for call in (store.plan("ada"), store.add_checkin("ada", T0, "x"), store.pop_due("ada", T0),
                     store.complete_step("ada")):
            with pytest.raises(MemoryUnavailable):
                await call
    finally:
        await client.aclose()
