"""The outbox: memory writes that wait while Redis is unreachable, flushed when it returns.

A turn never loses what the person did because Redis blinked: the record-outcome and
reflect steps put their writes here when a write fails, and every later turn flushes the
queue in order before doing anything else. The queue is bounded (``limit``) and, when a
file is given, mirrored to disk so a restart of the process does not lose it either.
Hand-written because the writes are our own typed operations and a broker would need
the very Redis that is down.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from memories.current_state import CurrentStateMemory, CurrentStateUpdate
from memories.errors import MemoryLayerError, MemoryUnavailable, RecordNotFound
from memories.interventions import InterventionMemory, NewIntervention
from memories.ranking import Outcome
from memories.reflections import NewReflection, ReflectionMemory
from memories.registry import MemoryRegistry

log = logging.getLogger(__name__)


class RecordIntervention(BaseModel):
    """Store one intervention under an id chosen in advance."""

    op: Literal["record_intervention"] = "record_intervention"
    user_id: str
    intervention_id: str
    record: NewIntervention


class SettleOutcome(BaseModel):
    """Settle one intervention's outcome."""

    op: Literal["settle"] = "settle"
    user_id: str
    intervention_id: str
    outcome: Outcome


class UpdateState(BaseModel):
    """Append wins/losses and patch the current state."""

    op: Literal["update_state"] = "update_state"
    user_id: str
    wins: list[str] = Field(default_factory=list)
    losses: list[str] = Field(default_factory=list)
    patch: CurrentStateUpdate | None = None


class RememberReflection(BaseModel):
    """Merge one insight into the person's reflections."""

    op: Literal["reflection"] = "reflection"
    user_id: str
    reflection: NewReflection


Write = Annotated[RecordIntervention | SettleOutcome | UpdateState | RememberReflection, Field(discriminator="op")]
_WRITES = TypeAdapter(list[Write])


class OutboxFull(MemoryLayerError):
    """The outbox holds ``limit`` writes already; this one could not be kept."""


async def apply(write: Write, registry: MemoryRegistry) -> None:
    """Perform one write against the memory layer (elements that are switched off are skipped)."""
    if isinstance(write, RecordIntervention):
        if (interventions := registry.get(InterventionMemory)) is not None:
            await interventions.record_many(write.user_id, [write.record], ids=[write.intervention_id])
    elif isinstance(write, SettleOutcome):
        if (interventions := registry.get(InterventionMemory)) is not None:
            await interventions.settle(write.user_id, write.intervention_id, write.outcome)
    elif isinstance(write, UpdateState):
        if (state := registry.get(CurrentStateMemory)) is not None:
            for win in write.wins:
                await state.add_win(write.user_id, win)
            for loss in write.losses:
                await state.add_loss(write.user_id, loss)
            if write.patch is not None:
                await state.update(write.user_id, write.patch.model_dump(mode="json", exclude_none=True))
    elif (reflections := registry.get(ReflectionMemory)) is not None:
        await reflections.remember(write.user_id, write.reflection)


class Outbox:
    """A bounded FIFO of memory writes, optionally mirrored to a JSON file."""

    def __init__(self, limit: int = 1000, path: Path | None = None) -> None:
        self.limit = limit
        self.path = path
        self._queue: deque[Write] = deque()
        if path is not None and path.exists():
            self._queue.extend(_WRITES.validate_json(path.read_bytes()))
            log.info("outbox: %d writes recovered from %s", len(self._queue), path)

    def __len__(self) -> int:
        return len(self._queue)

    def pending(self, user_id: str | None = None) -> list[Write]:
        """Queued writes, oldest first (of one user when given)."""
        return [w for w in self._queue if user_id is None or w.user_id == user_id]

    def put(self, write: Write) -> None:
        """Queue a write; raises :class:`OutboxFull` rather than silently dropping one."""
        if len(self._queue) >= self.limit:
            raise OutboxFull(f"the outbox already holds {self.limit} writes waiting for Redis")
        self._queue.append(write)
        self._save()

    async def run_or_queue(self, write: Write, registry: MemoryRegistry) -> bool:
        """Perform ``write`` now if nothing is queued before it and Redis answers, else queue it.
        Returns True when it was written now."""
        if not self._queue:
            try:
                await apply(write, registry)
                return True
            except MemoryUnavailable:
                log.warning("memory unavailable; queued %s for later", write.op)
        self.put(write)
        return False

    async def flush(self, registry: MemoryRegistry) -> int:
        """Write out queued writes in order; stops (keeping the rest) at the first outage."""
        done = 0
        while self._queue:
            write = self._queue[0]
            try:
                await apply(write, registry)
            except MemoryUnavailable:
                break
            except RecordNotFound as exc:  # e.g. the person asked to be forgotten meanwhile
                log.warning("outbox: dropped %s: %s", write.op, exc)
            self._queue.popleft()
            done += 1
        if done:
            log.info("outbox: flushed %d writes, %d left", done, len(self._queue))
            self._save()
        return done

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(_WRITES.dump_json(list(self._queue)))
        os.replace(tmp, self.path)  # atomic: a crash leaves the old or the new queue, never half

    def as_json(self) -> list[dict[str, Any]]:
        """The queue as plain data (for export and debugging)."""
        return json.loads(_WRITES.dump_json(list(self._queue)))
