"""The companion's outbox: the memory and tool-state writes that wait while Redis is
unreachable, and how each is applied exactly once.

A turn never loses what the person did because Redis blinked: the steps that write put
their writes here when a write fails, and every later turn flushes the queue in order
before doing anything else. The queue itself (durable per-process files, bounded, one
flusher) is :class:`memories.outbox.Outbox`; this module is its vocabulary. It lives in
``graphs`` because the writes include the tools' (``tools.writes``) and the exactly-once
check uses the coaching store's ``applied`` set, and ``memories`` may not import ``tools``.

* **Exactly once.** Every write carries a ``key`` derived from the turn that made it
  (``graphs.nodes.common.write_id``), so a re-run of the turn, a retry or a replay after a
  crash writes the same record once: interventions are stored under that id (and never
  reset once settled), settling is idempotent, and writes that add (wins, reflections,
  safety events, completed steps) record their key in the person's ``applied`` set and are
  skipped when it is there already.
* **Bounded** by ``SAM2VOICE_COMPANION__OUTBOX_LIMIT`` (1,000 by default); a write beyond
  that raises :class:`OutboxFull` and the person is told.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from memories.current_state import CurrentStateMemory, CurrentStateUpdate
from memories.errors import RecordNotFound
from memories.interventions import InterventionMemory, NewIntervention
from memories.outbox import Outbox as QueueOutbox
from memories.outbox import OutboxFull
from memories.outcomes import Outcome
from memories.reflections import NewReflection, ReflectionMemory
from memories.registry import MemoryRegistry
from tools.store import CoachingStore
from tools.writes import TOOL_WRITES, ToolWrite, apply_tool_write

__all__ = ["Outbox", "OutboxFull", "RecordIntervention", "RememberReflection", "SettleOutcome", "UpdateState",
           "Write", "apply"]

class RecordIntervention(BaseModel):
    """Store one intervention under an id chosen in advance."""

    op: Literal["record_intervention"] = "record_intervention"
    key: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Idempotency key.")
    user_id: str
    intervention_id: str
    record: NewIntervention


class SettleOutcome(BaseModel):
    """Settle one intervention's outcome."""

    op: Literal["settle"] = "settle"
    key: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Idempotency key.")
    user_id: str
    intervention_id: str
    outcome: Outcome
    contribute: bool = Field(False, description="The outcome counts in the population pool (the person agreed).")


class UpdateState(BaseModel):
    """Append wins/losses and patch the current state."""

    op: Literal["update_state"] = "update_state"
    key: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Idempotency key.")
    user_id: str
    wins: list[str] = Field(default_factory=list)
    losses: list[str] = Field(default_factory=list)
    patch: CurrentStateUpdate | None = None


class RememberReflection(BaseModel):
    """Merge one insight into the person's reflections."""

    op: Literal["reflection"] = "reflection"
    key: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Idempotency key.")
    user_id: str
    reflection: NewReflection


Write = Annotated[RecordIntervention | SettleOutcome | UpdateState | RememberReflection | ToolWrite,
                  Field(discriminator="op")]
_WRITES = TypeAdapter(list[Write])


@functools.lru_cache(maxsize=16)
def _store_for(client: Any, namespace: str) -> CoachingStore:
    return CoachingStore(client, namespace)


def _store(registry: MemoryRegistry) -> CoachingStore:
    """The coaching store on the registry's client (one per client: its scripts load once)."""
    return _store_for(registry.backend.client, registry.backend.settings.namespace)


async def apply(write: Write, registry: MemoryRegistry, *, replay: bool = False) -> None:
    """Perform one write against the memory layer, exactly once per ``write.key`` (elements
    that are switched off are skipped). ``replay``: the write waited in the queue, so what it
    changes may have moved on meanwhile (an intervention settled since is never reset)."""
    store = _store(registry)
    if isinstance(write, TOOL_WRITES):
        await apply_tool_write(write, store, registry)
    elif isinstance(write, RecordIntervention):
        if (interventions := registry.get(InterventionMemory)) is not None:
            if replay:
                with contextlib.suppress(RecordNotFound):
                    if (await interventions.get(write.user_id, write.intervention_id)).outcome is not Outcome.PENDING:
                        return  # settled since (a replay after the settle landed): never reset it
            await interventions.record_many(write.user_id, [write.record], ids=[write.intervention_id])
    elif isinstance(write, SettleOutcome):
        if (interventions := registry.get(InterventionMemory)) is not None:
            await interventions.settle(write.user_id, write.intervention_id, write.outcome,
                                       contribute=write.contribute)
    elif isinstance(write, UpdateState):
        if (state := registry.get(CurrentStateMemory)) is not None:
            if await store.was_applied(write.user_id, write.key):
                return
            for win in write.wins:
                await state.add_win(write.user_id, win)
            for loss in write.losses:
                await state.add_loss(write.user_id, loss)
            if write.patch is not None:
                await state.update(write.user_id, write.patch.model_dump(mode="json", exclude_none=True))
            await store.mark_applied(write.user_id, write.key)
    elif (reflections := registry.get(ReflectionMemory)) is not None:
        if await store.was_applied(write.user_id, write.key):
            return
        await reflections.remember(write.user_id, write.reflection)
        await store.mark_applied(write.user_id, write.key)


class Outbox(QueueOutbox[Write]):
    """The companion's outbox: :class:`memories.outbox.Outbox` of its writes, applied by :func:`apply`."""

    def __init__(self, limit: int = 1000, directory: Path | None = None) -> None:
        super().__init__(_WRITES, apply, limit=limit, directory=directory)
