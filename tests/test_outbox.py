"""The outbox: memory writes wait while Redis is unreachable and are flushed in order, none lost."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from graphs.outbox import Outbox, OutboxFull, RecordIntervention, SettleOutcome, UpdateState
from memories.base import MemoryBackend
from memories.connection import connect
from memories.current_state import CurrentStateMemory
from memories.errors import RecordNotFound
from memories.interventions import InterventionMemory, NewIntervention
from memories.ranking import Outcome
from memories.registry import MemoryRegistry
from memories.stack import MemoryStack
from tests.conftest import element, free_port


def record(user: str, intervention_id: str, said: str = "I can't start my essay") -> RecordIntervention:
    return RecordIntervention(user_id=user, intervention_id=intervention_id, record=NewIntervention(
        text="Let's write just the title.", tool_name="create_microsteps", user_context=said))


def win(user: str, text: str) -> UpdateState:
    return UpdateState(user_id=user, wins=[text])


def unreachable(stack: MemoryStack) -> MemoryRegistry:
    """The same elements, but their client points at a port where nothing listens (Redis gone)."""
    backend = stack.registry.backend
    dead = MemoryBackend(client=connect(f"redis://127.0.0.1:{free_port()}", connect_timeout_s=0.5),
                         embeddings=backend.embeddings, settings=backend.settings)
    return MemoryRegistry(dead)


async def test_a_write_goes_straight_to_redis_when_it_answers(stack: MemoryStack) -> None:
    outbox = Outbox()
    assert await outbox.run_or_queue(record("maya", "i1"), stack.registry) is True
    assert len(outbox) == 0
    stored = await element(stack, InterventionMemory).get("maya", "i1")
    assert stored.outcome is Outcome.PENDING and stored.tool_name == "create_microsteps"


async def test_writes_queue_while_redis_is_down_and_flush_in_order(stack: MemoryStack) -> None:
    outbox = Outbox()
    down = unreachable(stack)
    assert await outbox.run_or_queue(record("maya", "i1"), down) is False
    # Redis answers again, but a write never overtakes one queued before it: the settle would
    # otherwise reach Redis before the intervention it settles exists.
    assert await outbox.run_or_queue(SettleOutcome(user_id="maya", intervention_id="i1",
                                                   outcome=Outcome.TASK_COMPLETED), stack.registry) is False
    assert [w.op for w in outbox.pending()] == ["record_intervention", "settle"]

    assert await outbox.flush(down) == 0  # still down: nothing written, nothing dropped
    assert len(outbox) == 2
    assert await outbox.flush(stack.registry) == 2
    assert len(outbox) == 0
    assert (await element(stack, InterventionMemory).get("maya", "i1")).outcome is Outcome.TASK_COMPLETED


async def test_flush_stops_at_the_first_outage_and_keeps_the_rest(stack: MemoryStack) -> None:
    # Interventions reachable, current state not: the queue must stop there, not skip ahead.
    mixed = MemoryRegistry(stack.registry.backend)
    mixed.elements["current_state"] = unreachable(stack).elements["current_state"]
    outbox = Outbox()
    for write in (record("maya", "a"), win("maya", "got up"), record("maya", "b")):
        outbox.put(write)

    assert await outbox.flush(mixed) == 1
    assert [w.op for w in outbox.pending()] == ["update_state", "record_intervention"]
    interventions = element(stack, InterventionMemory)
    await interventions.get("maya", "a")
    with pytest.raises(RecordNotFound):
        await interventions.get("maya", "b")

    assert await outbox.flush(stack.registry) == 2
    assert (await interventions.get("maya", "b")).tool_name == "create_microsteps"
    assert (await element(stack, CurrentStateMemory).get_or_default("maya")).recent_wins == ["got up"]


async def test_a_full_outbox_refuses_loudly_instead_of_dropping(stack: MemoryStack) -> None:
    outbox = Outbox(limit=2)
    down = unreachable(stack)
    await outbox.run_or_queue(record("maya", "a"), down)
    await outbox.run_or_queue(record("maya", "b"), down)
    with pytest.raises(OutboxFull, match="2 writes"):
        await outbox.run_or_queue(record("maya", "c"), down)
    with pytest.raises(OutboxFull):
        outbox.put(win("maya", "x"))
    assert [w.intervention_id for w in outbox.pending()] == ["a", "b"]  # the oldest are kept


async def test_the_file_mirror_survives_a_restart(stack: MemoryStack, tmp_path: Path) -> None:
    path = tmp_path / "outbox.json"
    first = Outbox(path=path)
    first.put(record("maya", "a"))
    first.put(win("leo", "made tea"))

    again = Outbox(path=path)  # a new process on the same file
    assert again.as_json() == first.as_json()
    assert [w.user_id for w in again.pending()] == ["maya", "leo"]
    assert [w.op for w in again.pending("leo")] == ["update_state"]

    assert await again.flush(stack.registry) == 2
    assert len(Outbox(path=path)) == 0  # flushed writes are gone from the file too
    assert (await element(stack, InterventionMemory).get("maya", "a")).outcome is Outcome.PENDING


async def test_a_settle_for_a_record_that_is_gone_is_dropped_with_a_log(
    stack: MemoryStack, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox()
    outbox.put(SettleOutcome(user_id="maya", intervention_id="forgotten", outcome=Outcome.ABANDONED))
    outbox.put(record("maya", "after"))
    with caplog.at_level(logging.WARNING, logger="graphs.outbox"):
        assert await outbox.flush(stack.registry) == 2
    assert "dropped settle" in caplog.text
    assert len(outbox) == 0
    await element(stack, InterventionMemory).get("maya", "after")  # the queue went on past it


async def test_writes_for_switched_off_elements_are_skipped(stack: MemoryStack) -> None:
    only_profile = MemoryRegistry(stack.registry.backend, enabled=["profile"])
    outbox = Outbox()
    assert await outbox.run_or_queue(record("maya", "a"), only_profile) is True
    assert await outbox.run_or_queue(win("maya", "x"), only_profile) is True
    with pytest.raises(RecordNotFound):
        await element(stack, InterventionMemory).get("maya", "a")
