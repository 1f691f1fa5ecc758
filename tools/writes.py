"""Tool-state writes as data: what a coaching tool changes, in a form that can wait in the
outbox while Redis is down and be applied exactly once when it is back.

Each write carries the idempotency ``key`` of the tool call that made it (derived from the
turn, see ``tools.base.call_key``). The :class:`~tools.store.CoachingStore` scripts check
and record that key in the same atomic step as the write; the two writes that go to memory
elements (a win, a rating) are keyed by record id or checked against the same applied set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from memories.current_state import CurrentStateMemory
from memories.errors import InvalidInput, MemoryUnavailable, RecordNotFound
from memories.feedback import FeedbackMemory, NewFeedback
from memories.registry import MemoryRegistry
from tools.store import CoachingStore, DueItem, Plan, SafetyEvent

if TYPE_CHECKING:
    from tools.context import ToolContext

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Keyed(BaseModel):
    key: str = Field(description="Idempotency key: the same key is applied once.")
    user_id: str


class SavePlan(_Keyed):
    """A new plan (replaces the old one)."""

    op: Literal["save_plan"] = "save_plan"
    task: str
    steps: list[str]
    created_at: float


class CompleteSteps(_Keyed):
    """``count`` steps of the current plan done."""

    op: Literal["complete_steps"] = "complete_steps"
    count: int = Field(ge=1)
    at: float


class SplitStep(_Keyed):
    """The current step replaced by smaller parts."""

    op: Literal["split_step"] = "split_step"
    parts: list[str]


class Schedule(_Keyed):
    """A check-in or reminder to schedule."""

    op: Literal["schedule"] = "schedule"
    item: DueItem


class KeepSafetyEvent(_Keyed):
    """A safety event to keep."""

    op: Literal["safety_event"] = "safety_event"
    event: SafetyEvent


class LogWin(_Keyed):
    """A micro-win for the current state."""

    op: Literal["log_win"] = "log_win"
    win: str


class SaveRating(_Keyed):
    """A rating of a reply, for the feedback memory."""

    op: Literal["rating"] = "rating"
    feedback: NewFeedback


ToolWrite = SavePlan | CompleteSteps | SplitStep | Schedule | KeepSafetyEvent | LogWin | SaveRating
TOOL_WRITES = (SavePlan, CompleteSteps, SplitStep, Schedule, KeepSafetyEvent, LogWin, SaveRating)


class WriteQueue(Protocol):
    """Where writes wait while Redis is down (the graph's outbox)."""

    def put(self, write: ToolWrite) -> None:
        """Queue ``write`` (raises when full)."""

    def pending(self, user_id: str | None = None) -> list[object]:
        """Writes still waiting (of one person)."""


async def apply_tool_write(write: ToolWrite, store: CoachingStore, registry: MemoryRegistry) -> None:
    """Apply one tool write, once per key. A write that no longer fits (its plan is gone or
    done, the schedule is full) is dropped with a log line: replaying it cannot succeed."""
    user, key = write.user_id, write.key
    try:
        if isinstance(write, SavePlan):
            await store.save_plan(user, write.task, write.steps, now=write.created_at, key=key)
        elif isinstance(write, CompleteSteps):
            await store.complete_steps(user, write.count, now=write.at, key=key)
        elif isinstance(write, SplitStep):
            await store.split_current_step(user, write.parts, key=key)
        elif isinstance(write, Schedule):
            await store.schedule(user, write.item, key=key)
        elif isinstance(write, KeepSafetyEvent):
            await store.record_safety_event(user, write.event, key=key)
        elif isinstance(write, LogWin):
            if (state := registry.get(CurrentStateMemory)) is not None and not await store.was_applied(user, key):
                await state.add_win(user, write.win)
                await store.mark_applied(user, key)
        elif (feedback := registry.get(FeedbackMemory)) is not None:
            await feedback.save(user, write.feedback, record_id=key)
            await feedback.refresh_summary(user)
    except (RecordNotFound, InvalidInput) as exc:
        log.warning("tool write %s for a state that changed since; dropped: %s", write.op, exc)


async def write_or_queue(ctx: ToolContext, write: ToolWrite, direct: Callable[[], Awaitable[T]]) -> T | None:
    """Make ``write`` now with ``direct`` (the keyed store call that performs it, returning what
    the tool reports) and return its result; when Redis is down, or writes of this person
    already wait (a write must not overtake them), queue ``write`` and return None: the tool
    then works from what it knows and tells the person it will be saved later."""
    if ctx.queue is None:
        return await direct()
    if not ctx.queue.pending(write.user_id):
        try:
            return await direct()
        except MemoryUnavailable as exc:
            log.warning("%s: memory unavailable (%s); queued for later", write.op, exc)
    ctx.queue.put(write)  # OutboxFull (a MemoryLayerError) reaches the tool wrapper: the person is told
    return None


async def schedule(ctx: ToolContext, user_id: str, kind: str, due_at: float, text: str, *, key: str
                   ) -> tuple[DueItem, bool]:
    """Schedule a check-in or reminder once per ``key``; returns it and whether it is saved
    (False: it waits in the outbox)."""
    item = ctx.store.item(kind, due_at, text, key=key)
    saved = await write_or_queue(ctx, Schedule(key=key, user_id=user_id, item=item),
                                 lambda: ctx.store.schedule(user_id, item, key=key))
    return item, saved is not None


async def latest_plan(store: CoachingStore, queue: WriteQueue | None, user_id: str, *, offline: bool = False
                      ) -> Plan | None:
    """The person's plan as it truly is now. From Redis, except while Redis is down
    (``offline``, or the read fails) or while the person's changes still wait in ``queue``
    (Redis holds an older plan then): the plan this process last saw. Raises
    :class:`MemoryUnavailable` when Redis cannot say and this process knows no plan."""
    known = store.known_plan(user_id)
    if known is not None and (offline or (queue is not None and queue.pending(user_id))):
        return known
    if offline:
        raise MemoryUnavailable("memory is offline this turn and no plan is known here")
    try:
        return await store.plan(user_id)
    except MemoryUnavailable:
        if known is None:
            raise
        return known
