"""CoachingStore: a person's step plan, scheduled check-ins and reminders, in Redis.

All tool state lives here (never in module globals), so two app processes sharing one
Redis serve the same person consistently. Keys are ``{namespace}:coach:{kind}:{<user_tag>}``:
``plan`` (a hash), ``checkins`` and ``reminders`` (sorted sets scored by due time) and
``last_checkin`` (the time the last check-in reached the person), ``safety`` (a list) and
``applied`` (the idempotency keys of writes already done, a sorted set scored by time).
The braces are a Redis Cluster hash tag: all of a person's keys share one slot, so every
script below (each takes several of them) also runs on a cluster (``memories.keys``).

Every write takes an idempotency ``key`` (tools derive it from the turn): the script that
writes checks and records the key in the same atomic step, so a re-run of a turn, a retry
or an outbox replay changes the state once. The last plan seen per person is kept in
process (``known_plan``) so the tools can go on, honestly, while Redis is down.

The three operations that read and then write (advance a plan, add a bounded scheduled
item, pop due items) are small Lua scripts: Redis runs a script as one atomic step, so a
step is never completed twice and a due item never surfaces in two processes, without
the retry loops a WATCH/MULTI version needs under contention.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, StringConstraints

from memories.connection import unavailable_as_typed_error
from memories.errors import InvalidInput, RecordNotFound
from memories.keys import person_key
from memories.records import Text, Timestamp
from memories.validation import parse, user_tag

MAX_STEPS = 20
MAX_STEP_CHARS = 200
MAX_SCHEDULED = 50
DEFAULT_TTL_S = 30 * 86400  # coaching state of a person who stops coming back expires

StepText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_STEP_CHARS)]

# Every writing script starts with _SEEN (the write's key is in the applied set: return
# ``already``) and ends with _MARK (record the key), so the check and the write are one
# atomic step. KEYS[1] is always the applied set; ARGV[1] the key, ARGV[2] now, ARGV[3] the
# data's ttl. Keys are remembered for APPLIED_TTL_S: far longer than any outbox waits.
APPLIED_TTL_S = 7 * 86400
_SEEN = f"""
local function seen() return redis.call('ZSCORE', KEYS[1], ARGV[1]) end
local function mark()
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - {APPLIED_TTL_S})
  redis.call('EXPIRE', KEYS[1], {APPLIED_TTL_S})
end
"""
# KEYS: applied, plan. ARGV 4..: task, steps (JSON), n, created_at. Returns 1 written, 0 already.
_SAVE_PLAN = _SEEN + """
if seen() then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'task', ARGV[4], 'steps', ARGV[5], 'n', ARGV[6], 'current', 0, 'created_at', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[3])
mark()
return 1
"""
# KEYS: applied, plan. ARGV[4]: how many steps. Returns {first done, after last done, plan hash};
# {-1} no plan, {-2} every step done already, {-3, current, plan hash} this key was applied.
_COMPLETE_STEPS = _SEEN + """
local cur = redis.call('HGET', KEYS[2], 'current')
if not cur then return {-1} end
cur = tonumber(cur)
if seen() then return {-3, cur, redis.call('HGETALL', KEYS[2])} end
local n = tonumber(redis.call('HGET', KEYS[2], 'n'))
if cur >= n then return {-2} end
local upto = math.min(n, cur + tonumber(ARGV[4]))
redis.call('HSET', KEYS[2], 'current', upto)
if upto >= n then redis.call('HSET', KEYS[2], 'completed_at', ARGV[2]) end
mark()
return {cur, upto, redis.call('HGETALL', KEYS[2])}
"""
# KEYS: applied, target set, other set. ARGV 4..: score, member, max items. Returns 1 added,
# 0 full, 2 already added.
_ADD_BOUNDED = _SEEN + """
if seen() then return 2 end
if redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[3])
mark()
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
# KEYS: applied, plan. Replaces the current step by ARGV[4] (a JSON list); returns {0, plan hash};
# {-1} no plan, {-2} done, {-3} the plan would grow past ARGV[5] steps, {-4, plan hash} already.
# A script, so a concurrent step completion cannot interleave.
_SPLIT_STEP = _SEEN + """
local raw = redis.call('HGET', KEYS[2], 'steps')
if not raw then return {-1} end
if seen() then return {-4, redis.call('HGETALL', KEYS[2])} end
local steps = cjson.decode(raw)
local cur = tonumber(redis.call('HGET', KEYS[2], 'current'))
if cur >= #steps then return {-2} end
local parts = cjson.decode(ARGV[4])
if #steps - 1 + #parts > tonumber(ARGV[5]) then return {-3} end
local out = {}
for i = 1, cur do out[#out + 1] = steps[i] end
for i = 1, #parts do out[#out + 1] = parts[i] end
for i = cur + 2, #steps do out[#out + 1] = steps[i] end
redis.call('HSET', KEYS[2], 'steps', cjson.encode(out), 'n', #out)
mark()
return {0, redis.call('HGETALL', KEYS[2])}
"""
# KEYS: applied, safety list. ARGV[4]: the event, ARGV[5]: most kept. Returns 1 kept, 0 already.
_KEEP_EVENT = _SEEN + """
if seen() then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
mark()
return 1
"""
# KEYS: applied. Returns 1 if the key was new (now marked), 0 if it was applied already.
_MARK_APPLIED = _SEEN + """
if seen() then return 0 end
mark()
return 1
"""
#: Plans remembered in process for the tools to use while Redis is down (most recent people).
KNOWN_PLANS = 10_000

MAX_SAFETY_EVENTS = 50
#: The kinds of state a person has (``key(kind, user_id)``).
KINDS = ("plan", "checkins", "reminders", "last_checkin", "safety", "applied")


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
        """How the item is said to the person when it falls due: one wording for the text chat,
        the offline voice, the Live model's note and the reply's prefix."""
        if self.kind == "checkin":
            return f"Check-in: how is {self.text} going?"
        return f"Reminder: {self.text.rstrip('.')}."


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CoachingStore:
    """Per-person coaching state (plan, check-ins, reminders) on an async Redis client."""

    def __init__(self, client: aioredis.Redis, namespace: str, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self._save_plan = client.register_script(_SAVE_PLAN)
        self._complete_steps = client.register_script(_COMPLETE_STEPS)
        self._add_bounded = client.register_script(_ADD_BOUNDED)
        self._pop_due = client.register_script(_POP_DUE)
        self._split_step = client.register_script(_SPLIT_STEP)
        self._keep_event = client.register_script(_KEEP_EVENT)
        self._mark_applied = client.register_script(_MARK_APPLIED)
        self._known: OrderedDict[str, Plan | None] = OrderedDict()
        self._results: OrderedDict[str, Plan] = OrderedDict()

    def key(self, kind: str, user_id: str) -> str:
        """The Redis key of one kind of state of one person (validates the id)."""
        return person_key(self.namespace, "coach", kind, user_id=user_id)

    def _keys(self, user_id: str) -> list[str]:
        return [self.key(k, user_id) for k in KINDS]

    def _args(self, key: str | None, *rest: Any) -> list[Any]:
        return [key or uuid.uuid4().hex, repr(time.time()), self.ttl_s, *rest]

    # Idempotency

    @unavailable_as_typed_error
    async def was_applied(self, user_id: str, key: str) -> bool:
        """Whether a write with ``key`` was applied for the person already."""
        return await self.client.zscore(self.key("applied", user_id), key) is not None

    @unavailable_as_typed_error
    async def mark_applied(self, user_id: str, key: str) -> bool:
        """Record ``key`` as applied; False if it was already."""
        return bool(await self._mark_applied(keys=[self.key("applied", user_id)], args=self._args(key)))

    # Plans

    def known_plan(self, user_id: str) -> Plan | None:
        """The person's plan as this process last saw it (for when Redis is down)."""
        return self._known.get(user_tag(user_id))

    def remember_plan(self, user_id: str, plan: Plan | None, *, key: str | None = None) -> None:
        """Note ``plan`` as the person's latest (done by every read and write, and by the tools
        when they change a plan while Redis is down), and as the result of write ``key``."""
        tag = user_tag(user_id)
        self._known[tag] = plan
        self._known.move_to_end(tag)
        if key is not None and plan is not None:
            self._results[key] = plan
            while len(self._results) > KNOWN_PLANS:
                self._results.popitem(last=False)
        while len(self._known) > KNOWN_PLANS:
            self._known.popitem(last=False)

    def result_of(self, key: str) -> Plan | None:
        """The plan write ``key`` produced in this process, if it ran here (a re-run of a turn
        whose first run wrote, then lost Redis, reports the same plan instead of advancing twice)."""
        return self._results.get(key)

    @staticmethod
    def new_plan(task: str, steps: list[str], *, now: float | None = None) -> Plan:
        """A validated plan (not stored)."""
        return parse(Plan, {"task": task, "steps": steps, "created_at": time.time() if now is None else now})

    @unavailable_as_typed_error
    async def save_plan(self, user_id: str, task: str, steps: list[str], *, now: float | None = None,
                        key: str | None = None) -> Plan:
        """Store a new plan for ``task``, replacing any previous one (once per ``key``)."""
        plan = self.new_plan(task, steps, now=now)
        await self._save_plan(keys=[self.key("applied", user_id), self.key("plan", user_id)],
                              args=self._args(key, plan.task, json.dumps(plan.steps), len(plan.steps),
                                              repr(plan.created_at)))
        self.remember_plan(user_id, plan, key=key)
        return plan

    @staticmethod
    def _plan(raw: dict[Any, Any]) -> Plan:
        data = {_text(k): _text(v) for k, v in raw.items()}
        return Plan(task=data["task"], steps=json.loads(data["steps"]), current=int(data["current"]),
                    created_at=float(data["created_at"]),
                    completed_at=float(data["completed_at"]) if data.get("completed_at") else None)

    @staticmethod
    def _hash(flat: list[Any]) -> dict[Any, Any]:
        return dict(zip(flat[::2], flat[1::2], strict=True))

    @unavailable_as_typed_error
    async def plan(self, user_id: str) -> Plan | None:
        """The person's plan, or None if they have none."""
        raw = await self.client.hgetall(self.key("plan", user_id))
        plan = self._plan(raw) if raw else None
        self.remember_plan(user_id, plan)
        return plan

    async def complete_step(self, user_id: str, *, now: float | None = None, key: str | None = None
                            ) -> tuple[Plan, str]:
        """Mark the current step done; returns the updated plan and the step just completed.

        Raises :class:`RecordNotFound` without a plan and :class:`InvalidInput` when every
        step is already done.
        """
        plan, done = await self.complete_steps(user_id, 1, now=now, key=key)
        return plan, done[-1]

    @unavailable_as_typed_error
    async def complete_steps(self, user_id: str, count: int, *, now: float | None = None, key: str | None = None
                             ) -> tuple[Plan, list[str]]:
        """Mark up to ``count`` steps done (once per ``key``); returns the plan and the steps
        done by this call (a replay of an applied key returns the step before the current one)."""
        args = self._args(key, max(int(count), 1))
        if now is not None:
            args[1] = repr(now)
        reply = await self._complete_steps(keys=[self.key("applied", user_id), self.key("plan", user_id)], args=args)
        if reply[0] == -1:
            raise RecordNotFound("there is no plan yet")
        if reply[0] == -2:
            raise InvalidInput("every step of the plan is already done", field="plan")
        plan = self._plan(self._hash(reply[2]))
        # A replay of an applied key ({-3, current, ...}) reports the step before the current one.
        first, after = (max(plan.current - 1, 0), plan.current) if reply[0] == -3 else (int(reply[0]), int(reply[1]))
        done = plan.steps[first:after]
        self.remember_plan(user_id, plan, key=key)
        return plan, done

    @unavailable_as_typed_error
    async def split_current_step(self, user_id: str, parts: list[str], *, key: str | None = None) -> Plan:
        """Replace the current step by smaller ``parts`` (the person said it is too big)."""
        parts = [parse(Plan, {"task": "x", "steps": [s], "created_at": 0}).steps[0] for s in parts]
        reply = await self._split_step(keys=[self.key("applied", user_id), self.key("plan", user_id)],
                                       args=self._args(key, json.dumps(parts), MAX_STEPS))
        if reply[0] == -1:
            raise RecordNotFound("there is no plan yet")
        if reply[0] == -2:
            raise InvalidInput("every step of the plan is already done", field="plan")
        if reply[0] == -3:
            raise InvalidInput(f"a plan holds at most {MAX_STEPS} steps", field="plan")
        plan = self._plan(self._hash(reply[1]))
        self.remember_plan(user_id, plan, key=key)
        return plan

    # Safety events

    @unavailable_as_typed_error
    async def record_safety_event(self, user_id: str, event: SafetyEvent, *, key: str | None = None) -> None:
        """Keep a safety event (newest first, bounded) for the person's export and forget."""
        await self._keep_event(keys=[self.key("applied", user_id), self.key("safety", user_id)],
                               args=self._args(key, event.model_dump_json(), MAX_SAFETY_EVENTS))

    @unavailable_as_typed_error
    async def safety_events(self, user_id: str) -> list[SafetyEvent]:
        """The person's safety events, newest first."""
        raw = await self.client.lrange(self.key("safety", user_id), 0, -1)
        return [SafetyEvent.model_validate_json(item) for item in raw]

    # Check-ins and reminders

    async def add_checkin(self, user_id: str, due_at: float, about: str, *, key: str | None = None) -> DueItem:
        """Schedule a check-in about ``about`` at ``due_at`` (once per ``key``)."""
        return await self.schedule(user_id, self.item("checkin", due_at, about, key=key), key=key)

    async def add_reminder(self, user_id: str, due_at: float, text: str, *, key: str | None = None) -> DueItem:
        """Schedule a reminder of ``text`` at ``due_at`` (once per ``key``)."""
        return await self.schedule(user_id, self.item("reminder", due_at, text, key=key), key=key)

    @staticmethod
    def item(kind: str, due_at: float, text: str, *, key: str | None = None) -> DueItem:
        """A validated check-in or reminder (its id derives from ``key`` when given)."""
        data: dict[str, Any] = {"kind": kind, "text": text, "due_at": due_at}
        if key:
            data["id"] = key[:12]
        return parse(DueItem, data)

    @unavailable_as_typed_error
    async def schedule(self, user_id: str, item: DueItem, *, key: str | None = None) -> DueItem:
        """Add a check-in or reminder, bounded to ``MAX_SCHEDULED`` per person, once per ``key``."""
        kind, other = ("checkins", "reminders") if item.kind == "checkin" else ("reminders", "checkins")
        added = await self._add_bounded(
            keys=[self.key("applied", user_id), self.key(kind, user_id), self.key(other, user_id)],
            args=self._args(key, repr(item.due_at), item.model_dump_json(), MAX_SCHEDULED),
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
        keys = [self.key(k, user_id) for k in ("checkins", "reminders", "last_checkin")]
        checkins, reminders = await self._pop_due(keys=keys, args=[repr(now), self.ttl_s])
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
        deleted = int(await self.client.unlink(*self._keys(user_id)))
        self._known.pop(user_tag(user_id), None)  # nor does this process remember their plan
        return deleted

    async def export(self, user_id: str) -> dict[str, Any]:
        """All coaching state of ``user_id`` as plain data."""
        plan = await self.plan(user_id)
        return {
            "plan": plan.model_dump(mode="json") if plan else None,
            "scheduled": [i.model_dump(mode="json") for i in await self.upcoming(user_id, limit=MAX_SCHEDULED)],
            "last_checkin_at": await self.last_checkin_at(user_id),
            "safety_events": [e.model_dump(mode="json") for e in await self.safety_events(user_id)],
        }
