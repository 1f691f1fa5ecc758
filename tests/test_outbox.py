"""The outbox: memory writes wait while Redis is unreachable and are flushed in order, none lost."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from graphs.outbox import Outbox, OutboxFull, RecordIntervention, SettleOutcome, UpdateState
from memories.base import MemoryBackend
from memories.connection import connect
from memories.current_state import CurrentStateMemory
from memories.errors import RecordNotFound
from memories.interventions import InterventionMemory, NewIntervention
from memories.outcomes import Outcome
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


async def test_the_file_survives_a_restart_and_is_adopted_once(stack: MemoryStack, tmp_path: Path) -> None:
    first = Outbox(directory=tmp_path)
    first.put(record("maya", "a"))
    first.put(win("leo", "made tea"))
    assert first.path is not None and first.path.exists()

    assert len(Outbox(directory=tmp_path)) == 0  # the first is alive: its file is not taken from it
    first.close()  # the process ends (a crash releases the lock the same way)

    again = Outbox(directory=tmp_path)  # a new process on the same data dir
    assert again.as_json() == first.as_json()
    assert [w.user_id for w in again.pending()] == ["maya", "leo"]
    assert [w.op for w in again.pending("leo")] == ["update_state"]
    assert sorted(p.name for p in tmp_path.glob("outbox*.json")) == [again.path.name]  # the old file is gone

    assert await again.flush(stack.registry) == 2
    again.close()
    assert len(Outbox(directory=tmp_path)) == 0  # flushed writes are gone from the file too
    assert (await element(stack, InterventionMemory).get("maya", "a")).outcome is Outcome.PENDING


def test_an_outbox_is_never_falsy() -> None:
    # `outbox or Outbox()` once replaced the real app's empty on-disk outbox by an in-memory one.
    outbox = Outbox()
    assert len(outbox) == 0 and bool(outbox) is True


def test_the_old_single_file_is_adopted(tmp_path: Path) -> None:
    legacy = Outbox()
    legacy.put(record("maya", "old"))
    (tmp_path / "outbox.json").write_text(json.dumps(legacy.as_json()))
    adopted = Outbox(directory=tmp_path)
    assert [w.intervention_id for w in adopted.pending()] == ["old"]
    assert not (tmp_path / "outbox.json").exists()


_PUT_MANY = """
import sys
from graphs.outbox import Outbox, UpdateState
outbox = Outbox(directory=__import__("pathlib").Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    outbox.put(UpdateState(user_id="maya", wins=[f"{sys.argv[2]}-{i}"], key=f"{sys.argv[2]}{i}"))
"""


def test_two_processes_on_one_data_dir_lose_nothing(tmp_path: Path) -> None:
    # Each process keeps its own file: they used to share one outbox.tmp and overwrite each other.
    procs = [subprocess.Popen([sys.executable, "-c", _PUT_MANY, str(tmp_path), name, "150"],
                              stderr=subprocess.PIPE) for name in ("p1", "p2")]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    adopted = Outbox(directory=tmp_path)
    assert len(adopted) == 300
    assert len({w.key for w in adopted.pending()}) == 300


async def test_concurrent_flushes_apply_each_write_once(stack: MemoryStack) -> None:
    outbox = Outbox()
    for i in range(20):
        outbox.put(win("maya", f"win {i}"))
    results = await asyncio.gather(*(outbox.flush(stack.registry) for _ in range(10)))
    assert sum(results) == 20 and len(outbox) == 0
    memory = element(stack, CurrentStateMemory)
    state = await memory.get_or_default("maya")
    kept = min(20, memory.settings.max_list_items)
    assert state.recent_wins == [f"win {i}" for i in range(20 - kept, 20)]  # each once, in order


async def test_a_replayed_write_lands_once(stack: MemoryStack) -> None:
    interventions = element(stack, InterventionMemory)
    outbox = Outbox()
    # A turn re-run after a crash (or a replay after a crash between a write and its removal
    # from the queue) applies the same writes again: nothing is doubled or reset.
    once = [record("maya", "i1"), SettleOutcome(user_id="maya", intervention_id="i1", outcome=Outcome.TASK_PROGRESS),
            UpdateState(user_id="maya", wins=["got up"], key="turn1win")]
    for write in once:
        assert await outbox.run_or_queue(write, stack.registry)
    for write in once:  # the same writes again, as a replay from the queue
        outbox.put(write.model_copy())
    assert await outbox.flush(stack.registry) == 3
    assert (await interventions.get("maya", "i1")).outcome is Outcome.TASK_PROGRESS
    assert (await interventions.success_rates("maya"))["create_microsteps"].settled == 1
    assert (await element(stack, CurrentStateMemory).get_or_default("maya")).recent_wins == ["got up"]
    outbox.put(once[2])
    outbox.put(once[2].model_copy())
    assert len(outbox) == 1  # the same write is queued once


async def test_a_settle_for_a_record_that_is_gone_is_dropped_with_a_log(
    stack: MemoryStack, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox()
    outbox.put(SettleOutcome(user_id="maya", intervention_id="forgotten", outcome=Outcome.ABANDONED))
    outbox.put(record("maya", "after"))
    with caplog.at_level(logging.WARNING, logger="memories.outbox"):
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


def test_a_forgotten_persons_queued_writes_are_dropped(tmp_path: Path) -> None:
    # Forget me during an outage: nothing of theirs may land when Redis comes back.
    outbox = Outbox(directory=tmp_path)
    for write in (record("maya", "a"), win("leo", "made tea"), win("maya", "got up")):
        outbox.put(write)
    assert outbox.drop("maya") == 2
    assert [w.user_id for w in outbox.pending()] == ["leo"]
    outbox.close()
    assert [w.user_id for w in Outbox(directory=tmp_path).pending()] == ["leo"]  # and on disk


async def test_the_memory_layer_queue_carries_any_keyed_writes(stack: MemoryStack, tmp_path: Path) -> None:
    """``memories.outbox.Outbox`` is the mechanism only: a caller's own write type queues while
    Redis is down, survives a restart in its file and is applied, in order, once it answers."""
    from typing import Literal

    from pydantic import BaseModel, TypeAdapter

    from memories.connection import unavailable_as_typed_error
    from memories.outbox import Outbox as QueueOutbox

    class Note(BaseModel):
        op: Literal["note"] = "note"
        key: str
        user_id: str
        text: str

    @unavailable_as_typed_error
    async def apply(write: Note, registry: MemoryRegistry, *, replay: bool) -> None:
        await registry.backend.client.rpush(f"{registry.backend.settings.namespace}:test-notes", write.text)

    codec = TypeAdapter(list[Note])
    first = QueueOutbox(codec, apply, directory=tmp_path)
    down = unreachable(stack)
    for n in range(3):
        assert await first.run_or_queue(Note(key=f"k{n}", user_id="maya", text=f"note {n}"), down) is False
    first.put(Note(key="k1", user_id="maya", text="note 1"))  # the same key is not queued twice
    first.close()
    second = QueueOutbox(codec, apply, directory=tmp_path)  # a restart adopts the file
    assert second.adopted == 3
    assert await second.flush(stack.registry) == 3
    notes = await stack.registry.backend.client.lrange(f"{stack.registry.backend.settings.namespace}:test-notes", 0, -1)
    assert [n.decode() if isinstance(n, bytes) else n for n in notes] == ["note 0", "note 1", "note 2"]
