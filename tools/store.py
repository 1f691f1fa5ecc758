"""CoachingStore: a person's step plan, scheduled check-ins and reminders, in Redis.

All tool state lives here (never in module globals), so two app processes sharing one
Redis serve the same person consistently. Keys are ``{namespace}:coach:{kind}:{user_tag}``:
``plan`` (a hash), ``checkins`` and ``reminders`` (sorted sets scored by due time) and
``last_checkin`` (the time the last check-in reached the person).

The three operations that read and then write (advance a plan, add a bounded scheduled
item, pop due items) are small Lua scripts: Redis runs a script as one atomic step, so a
step is never completed twice and a due item never surfaces in two processes, without
the retry loops a WATCH/MULTI version needs under contention.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, StringConstraints

from memories.connection import unavailable_as_typed_error
from memories.errors import InvalidInput, RecordNotFound
from memories.records import Text, Timestamp
from memories.validation import parse, user_tag

MAX_STEPS = 20
MAX_STEP_CHARS = 200
MAX_SCHEDULED = 50
DEFAULT_TTL_S = 30 * 86400  # coaching state of a person who stops coming back expires

StepText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_STEP_CHARS)]

# Returns {index of the step just completed, the plan hash}; -1 no plan, -2 already done.
_COMPLETE_STEP = """
local cur = redis.call('HGET', KEYS[1], 'current')
if not cur then return {-1} end
cur = tonumber(cur)
if cur >= tonumber(redis.call('HGET', KEYS[1], 'n')) then return {-2} end
redis.call('HSET', KEYS[1], 'current', cur + 1)
if cur + 1 >= tonumber(redis.call('HGET', KEYS[1], 'n')) then
  redis.call('HSET', KEYS[1], 'completed_at', ARGV[1])
end
return {cur, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: target set, other set. ARGV: score, member, max items, ttl. Returns 1 added, 0 full.
_ADD_BOUNDED = """
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: checkins, reminders, last_checkin. ARGV: now, ttl. Returns {due checkins, due reminders}.
_POP_DUE = """
local checkins = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local reminders = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #checkins > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tonumber(ARGV[1]) > last then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2]) end
end
if #reminders > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
return {checkins, reminders}
"""


# Replaces the current step by ARGV[1] (a JSON list); returns the plan hash; {-1} no plan, {-2} done,
# {-3} the plan would grow past ARGV[2] steps. A script, so a concurrent step completion cannot interleave.
_SPLIT_STEP = """
local raw = redis.call('HGET', KEYS[1], 'steps')
if not raw then return {-1} end
local steps = cjson.decode(raw)
local cur = tonumber(redis.call('HGET', KEYS[1], 'current'))
if cur >= #steps then return {-2} end
local parts = cjson.decode(ARGV[1])
if #steps - 1 + #parts > tonumber(ARGV[2]) then return {-3} end
local out = {}
for i = 1, cur do out[#out + 1] = steps[i] end
for i = 1, #parts do out[#out + 1] = parts[i] end
for i = cur + 2, #steps do out[#out + 1] = steps[i] end
redis.call('HSET', KEYS[1], 'steps', cjson.encode(out), 'n', #out)
return {0, redis.call('HGETALL', KEYS[1])}
"""
MAX_SAFETY_EVENTS = 50


class SafetyEvent(BaseModel):
    """A moment the safety gate answered (kept apart from interventions: never learnt from)."""

    kind: str = Field(description="The kind of danger recognised (suicide, self_harm, harm_others, abuse, medical).")
    at: Timestamp = Field(description="When (Unix time).")
    source: str = Field("text", description="Where it was said: text chat or a voice transcript.")


class Plan(BaseModel):
    """A task broken into small steps; ``current`` counts the steps already done."""

    task: Text = Field(description="The task in the person's words.")
    steps: list[StepText] = Field(min_length=1, max_length=MAX_STEPS, description="Step texts, in order.")
    current: int = Field(0, ge=0, description="Index of the step to do now (= steps done so far).")
    created_at: Timestamp = Field(description="When the plan was made.")
    completed_at: Timestamp | None = Field(None, description="When the last step was done, if it was.")

    @property
    def done(self) -> bool:
        """Whether every step is done."""
        return self.current >= len(self.steps)

    @property
    def current_step(self) -> str | None:
        """The step to do now, or None when the plan is done."""
        return None if self.done else self.steps[self.current]


class DueItem(BaseModel):
    """A scheduled check-in or reminder."""

    kind: Literal["checkin", "reminder"] = Field(description="Check-in (a question) or reminder (a nudge).")
    text: Text = Field(description="What the check-in is about, or what to remind of.")
    due_at: Timestamp = Field(description="When it is due (Unix time).")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], description="Unique id of the item.")

    @property
    def message(self) -> str:
        """How the item reads when it surfaces in a turn."""
        if self.kind == "checkin":
            return f"Check-in about {self.text}: how is it going?"
        return f"Reminder: {self.text}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CoachingStore:
    """Per-person coaching state (plan, check-ins, reminders) on an async Redis client."""

    def __init__(self, client: aioredis.Redis, namespace: str, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self._complete_step = client.register_script(_COMPLETE_STEP)
        self._add_bounded = client.register_script(_ADD_BOUNDED)
        self._pop_due = client.register_script(_POP_DUE)
        self._split_step = client.register_script(_SPLIT_STEP)

    def key(self, kind: str, user_id: str) -> str:
        """The Redis key of one kind of state of one person (validates the id)."""
        return f"{self.namespace}:coach:{kind}:{user_tag(user_id)}"

    def _keys(self, user_id: str) -> list[str]:
        return [self.key(k, user_id) for k in ("plan", "checkins", "reminders", "last_checkin", "safety")]

    # Plans

    @unavailable_as_typed_error
    async def save_plan(self, user_id: str, task: str, steps: list[str], *, now: float | None = None) -> Plan:
        """Store a new plan for ``task``, replacing any previous one."""
        key = self.key("plan", user_id)
        plan = parse(Plan, {"task": task, "steps": steps, "created_at": time.time() if now is None else now})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(key)
            pipe.hset(key, mapping={"task": plan.task, "steps": json.dumps(plan.steps), "n": len(plan.steps),
                                    "current": 0, "created_at": repr(plan.created_at)})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()
        return plan

    @staticmethod
    def _plan(raw: dict[Any, Any]) -> Plan:
        data = {_text(k): _text(v) for k, v in raw.items()}
        return Plan(task=data["task"], steps=json.loads(data["steps"]), current=int(data["current"]),
                    created_at=float(data["created_at"]),
                    completed_at=float(data["completed_at"]) if data.get("completed_at") else None)

    @unavailable_as_typed_error
    async def plan(self, user_id: str) -> Plan | None:
        """The person's plan, or None if they have none."""
        raw = await self.client.hgetall(self.key("plan", user_id))
        return self._plan(raw) if raw else None

    @unavailable_as_typed_error
    async def complete_step(self, user_id: str, *, now: float | None = None) -> tuple[Plan, str]:
        """Mark the current step done; returns the updated plan and the step just completed.

        Raises :class:`RecordNotFound` without a plan and :class:`InvalidInput` when every
        step is already done.
        """
        key = self.key("plan", user_id)
        reply = await self._complete_step(keys=[key], args=[repr(time.time() if now is None else now)])
        if reply[0] == -1:
            raise RecordNotFound("there is no plan yet")
        if reply[0] == -2:
            raise InvalidInput("every step of the plan is already done", field="plan")
        flat = reply[1]
        plan = self._plan(dict(zip(flat[::2], flat[1::2], strict=True)))
        return plan, plan.steps[int(reply[0])]

    @unavailable_as_typed_error
    async def split_current_step(self, user_id: str, parts: list[str]) -> Plan:
        """Replace the current step by smaller ``parts`` (the person said it is too big)."""
        parts = [parse(Plan, {"task": "x", "steps": [s], "created_at": 0}).steps[0] for s in parts]
        reply = await self._split_step(keys=[self.key("plan", user_id)], args=[json.dumps(parts), MAX_STEPS])
        if reply[0] == -1:
            raise RecordNotFound("there is no plan yet")
        if reply[0] == -2:
            raise InvalidInput("every step of the plan is already done", field="plan")
        if reply[0] == -3:
            raise InvalidInput(f"a plan holds at most {MAX_STEPS} steps", field="plan")
        flat = reply[1]
        return self._plan(dict(zip(flat[::2], flat[1::2], strict=True)))

    # Safety events

    @unavailable_as_typed_error
    async def record_safety_event(self, user_id: str, event: SafetyEvent) -> None:
        """Keep a safety event (newest first, bounded) for the person's export and forget."""
        key = self.key("safety", user_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, event.model_dump_json())
            pipe.ltrim(key, 0, MAX_SAFETY_EVENTS - 1)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    @unavailable_as_typed_error
    async def safety_events(self, user_id: str) -> list[SafetyEvent]:
        """The person's safety events, newest first."""
        raw = await self.client.lrange(self.key("safety", user_id), 0, -1)
        return [SafetyEvent.model_validate_json(item) for item in raw]

    # Check-ins and reminders

    async def add_checkin(self, user_id: str, due_at: float, about: str) -> DueItem:
        """Schedule a check-in about ``about`` at ``due_at``."""
        return await self._add(user_id, parse(DueItem, {"kind": "checkin", "text": about, "due_at": due_at}))

    async def add_reminder(self, user_id: str, due_at: float, text: str) -> DueItem:
        """Schedule a reminder of ``text`` at ``due_at``."""
        return await self._add(user_id, parse(DueItem, {"kind": "reminder", "text": text, "due_at": due_at}))

    @unavailable_as_typed_error
    async def _add(self, user_id: str, item: DueItem) -> DueItem:
        kind, other = ("checkins", "reminders") if item.kind == "checkin" else ("reminders", "checkins")
        added = await self._add_bounded(
            keys=[self.key(kind, user_id), self.key(other, user_id)],
            args=[repr(item.due_at), item.model_dump_json(), MAX_SCHEDULED, self.ttl_s],
        )
        if not added:
            raise InvalidInput(f"there are already {MAX_SCHEDULED} check-ins and reminders scheduled",
                               field="scheduled")
        return item

    @unavailable_as_typed_error
    async def pop_due(self, user_id: str, now: float) -> list[DueItem]:
        """Remove and return every item due at ``now``, oldest first.

        Atomic: when two processes pop at once, each item goes to exactly one of them.
        Popping a check-in records ``now`` as the time of the last check-in.
        """
        checkins, reminders = await self._pop_due(keys=self._keys(user_id)[1:], args=[repr(now), self.ttl_s])
        items = [DueItem.model_validate_json(m) for m in [*checkins, *reminders]]
        return sorted(items, key=lambda i: i.due_at)

    @unavailable_as_typed_error
    async def upcoming(self, user_id: str, limit: int = 5) -> list[DueItem]:
        """The next ``limit`` scheduled items, soonest first."""
        if limit < 1:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrange(self.key("checkins", user_id), 0, limit - 1)
            pipe.zrange(self.key("reminders", user_id), 0, limit - 1)
            checkins, reminders = await pipe.execute()
        items = [DueItem.model_validate_json(m) for m in [*checkins, *reminders]]
        return sorted(items, key=lambda i: i.due_at)[:limit]

    @unavailable_as_typed_error
    async def last_checkin_at(self, user_id: str) -> float | None:
        """When the last check-in reached the person, or None if none has yet."""
        raw = await self.client.get(self.key("last_checkin", user_id))
        return float(_text(raw)) if raw is not None else None

    # A person's data

    @unavailable_as_typed_error
    async def forget(self, user_id: str) -> int:
        """Delete all coaching state of ``user_id``; returns the number of keys deleted."""
        return int(await self.client.unlink(*self._keys(user_id)))

    async def export(self, user_id: str) -> dict[str, Any]:
        """All coaching state of ``user_id`` as plain data."""
        plan = await self.plan(user_id)
        return {
            "plan": plan.model_dump(mode="json") if plan else None,
            "scheduled": [i.model_dump(mode="json") for i in await self.upcoming(user_id, limit=MAX_SCHEDULED)],
            "last_checkin_at": await self.last_checkin_at(user_id),
            "safety_events": [e.model_dump(mode="json") for e in await self.safety_events(user_id)],
        }
