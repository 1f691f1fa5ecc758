"""A person's session with the companion: one LangGraph thread, resumable, idle-aware,
and able to carry on when Redis goes away.

* Which thread is a person's current session lives in Redis (:class:`SessionDirectory`),
  so a second process, or this one after a restart, resumes the same conversation.
* A session idle longer than ``idle_timeout_minutes`` is ended (the reflect step runs)
  before a new one starts. An ended session's thread expires ``ended_thread_ttl_days`` later.
* If Redis stops answering mid-session, the session switches to an in-process
  checkpointer seeded with the last known state and keeps talking (memory writes wait in
  the outbox); when Redis answers again, the state is written back and it switches back.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field

from graphs.deps import CompanionDeps
from graphs.graph import build_companion_graph
from graphs.nodes.common import END_COMMAND, MEMORY_OFFLINE_NOTICE
from graphs.thread_ttl import expire_thread
from graphs.turn import Decision, DueItem, Evidence, FewShot, PlanView
from graphs.understanding.acts import Understanding
from memories.connection import OUTAGE
from memories.errors import InvalidInput
from memories.keys import person_key
from memories.records import MAX_TEXT_CHARS
from memories.validation import user_tag, validate_user_id
from tools.store import Plan

__all__ = ["MAX_MESSAGE_CHARS", "MEMORY_OFFLINE_NOTICE", "OUTAGE", "CompanionSession", "InvalidInput",
           "SessionDirectory", "SessionInfo", "TurnResult"]

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = MAX_TEXT_CHARS  # one text limit, the memory layer's
UpdateHook = Callable[[str, dict[str, Any]], Awaitable[None]]


class SessionInfo(BaseModel):
    """Where a person's current session lives."""

    thread_id: str = Field(description="The LangGraph thread of the session.")
    started_at: float = Field(description="Unix time the session started.")
    last_activity: float = Field(description="Unix time of the last turn.")


class TurnResult(BaseModel):
    """What one turn produced: the turn contract (``graphs.turn``) every front end reads as it is."""

    reply: str = Field(description="What the companion says.")
    thread_id: str = Field(description="The session's thread.")
    decision: Decision | None = Field(None, description="Tool chosen and why (``suggested``: the policy's choice).")
    few_shot: list[FewShot] = Field(default_factory=list, description="Past interventions shown to the model.")
    used_memory_ids: list[str] = Field(default_factory=list, description="Memory records the reply drew on.")
    evidence: Evidence | None = Field(None, description="What the message said about the last intervention.")
    understanding: Understanding | None = Field(None, description="How the message was read (act, sign, safety).")
    act: str | None = Field(None, description="The message's main act (greeting, struggle, progress, ...).")
    tool: str | None = Field(None, description="The coaching tool run this turn, or None.")
    plan: PlanView | None = Field(None, description="The plan after the turn: task, steps, current, done.")
    safety: bool = Field(False, description="True when this turn got the safety reply.")
    settled: list[dict[str, Any]] = Field(default_factory=list, description="Outcomes settled this turn.")
    due: list[DueItem] = Field(default_factory=list, description="Check-ins/reminders that fell due (``message``).")
    notice: str | None = Field(None, description="A calm one-line notice (e.g. memory offline).")
    degraded: bool = Field(False, description="True while memory is unavailable.")
    ended: bool = Field(False, description="True when this turn ended the session.")
    reflection: str | None = Field(None, description="The session's insight (on end).")
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per step.")


class SessionDirectory:
    """Each person's current session id, in Redis: ``{ns}:session:{<user_tag>}`` (a hash) and
    every thread of theirs, ``{ns}:session_threads:{<user_tag>}`` (a set); one hash slot."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _key(self, user_id: str) -> str:
        return person_key(self.namespace, "session", user_id=user_id)

    def _threads_key(self, user_id: str) -> str:
        # Same hash tag as _key: start/adopt change both in one MULTI, forget unlinks both.
        return person_key(self.namespace, "session_threads", user_id=user_id)

    async def threads(self, user_id: str) -> list[str]:
        """Every session thread of the person (for export and forget)."""
        return sorted(t.decode() for t in await self.client.smembers(self._threads_key(user_id)))

    async def forget(self, user_id: str, checkpointer: Any) -> int:
        """Delete the person's conversations: every thread's checkpoints and the directory."""
        threads = await self.threads(user_id)
        for thread_id in threads:
            await checkpointer.adelete_thread(thread_id)
        await self.client.unlink(self._key(user_id), self._threads_key(user_id))
        return len(threads)

    async def current(self, user_id: str) -> SessionInfo | None:
        """The person's open session, if any."""
        raw = await self.client.hgetall(self._key(user_id))
        return SessionInfo(**{k.decode(): v.decode() for k, v in raw.items()}) if raw else None

    async def start(self, user_id: str) -> SessionInfo:
        """Open a new session (a new thread)."""
        stamp = time.time()
        info = SessionInfo(thread_id=f"s{uuid.uuid4().hex}", started_at=stamp, last_activity=stamp)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(user_id), mapping={k: str(v) for k, v in info.model_dump().items()})
            pipe.sadd(self._threads_key(user_id), info.thread_id)
            await pipe.execute()
        return info

    async def adopt(self, user_id: str, thread_id: str) -> None:
        """Make a thread begun without Redis (during an outage) the person's current session,
        unless one is current already; either way it is listed for export and forget."""
        stamp = str(time.time())
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._key(user_id), "thread_id", thread_id)
            pipe.hsetnx(self._key(user_id), "started_at", stamp)
            pipe.hset(self._key(user_id), "last_activity", stamp)
            pipe.sadd(self._threads_key(user_id), thread_id)
            await pipe.execute()

    async def touch(self, user_id: str) -> None:
        """Note activity now."""
        await self.client.hset(self._key(user_id), "last_activity", str(time.time()))

    async def close(self, user_id: str, thread_id: str) -> None:
        """Forget the session as current (its thread stays readable)."""
        current = await self.current(user_id)
        if current and current.thread_id == thread_id:
            await self.client.delete(self._key(user_id))


def _validated(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"a message must be text, got {type(text).__name__}", field="message")
    text = text.strip()
    if not text:
        raise InvalidInput("say something (the message is empty)", field="message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInput(f"{len(text)} characters; the limit is {MAX_MESSAGE_CHARS}", field="message")
    return text


class CompanionSession:
    """One person talking to the companion; see the module docstring."""

    def __init__(self, graph: CompiledStateGraph[Any, Any, Any, Any], deps: CompanionDeps, user_id: str,
                 *, seed: str | None = None) -> None:
        self.graph = graph
        self.seed = seed  # makes the agent's random choices repeatable (evaluations)
        self.deps = deps
        self.user_id = validate_user_id(user_id)
        self.directory = SessionDirectory(deps.memory.client, deps.memory.registry.backend.settings.namespace)
        self.thread_id: str | None = None
        self._values: dict[str, Any] = {}
        self._fallback: CompiledStateGraph[Any, Any, Any, Any] | None = None
        self._log_at_outage = 0
        self._unclosed: str | None = None  # a session ended while Redis was down: still listed as current
        self._turn_key: str | None = None  # the running turn's message id

    async def plan(self) -> Plan | None:
        """The person's current plan (raises :data:`OUTAGE` while memory is out of reach)."""
        return await self.deps.store.plan(self.user_id)

    async def upcoming(self, limit: int = 1) -> list[DueItem]:
        """The person's next check-ins and reminders, soonest first (raises :data:`OUTAGE`)."""
        return await self.deps.store.upcoming(self.user_id, limit)

    @property
    def values(self) -> dict[str, Any]:
        """The session's state after its last run."""
        return dict(self._values)

    @property
    def config(self) -> dict[str, Any]:
        """The run config of this session's turns."""
        configurable = {"user_id": self.user_id, "thread_id": self.thread_id}
        if self._turn_key is not None:
            configurable["turn_key"] = self._turn_key  # the tools' writes derive their keys from it
        if self.seed is not None:
            configurable["seed"] = self.seed
        return {"configurable": configurable}

    async def open(self) -> TurnResult | None:
        """Resume the person's current session, or start one; an idle one is ended first
        (its ending is returned so the UI can show the reflection)."""
        ended = None
        try:
            await self._close_unclosed()
            current = await self.directory.current(self.user_id)
            idle_s = self.deps.settings.idle_timeout_minutes * 60
            if current and time.time() - current.last_activity > idle_s:
                self.thread_id = current.thread_id
                ended = await self.end()
                current = None
            current = current or await self.directory.start(self.user_id)
            self.thread_id = current.thread_id
            snapshot = await self.graph.aget_state(self.config)
            self._values = dict(snapshot.values or {})
        except OUTAGE as exc:
            log.warning("session: Redis unavailable at open (%s); starting without memory", exc)
            self.thread_id = self.thread_id or f"s{uuid.uuid4().hex}"
            await self._degrade()
        return ended

    async def send(self, text: str) -> TurnResult:
        """One turn: the person's words in, the companion's reply out."""
        return self._result(await self.run({"messages": [HumanMessage(content=_validated(text))], "live": None}))

    async def end(self) -> TurnResult:
        """End the session: the reflect step runs and the session is closed."""
        result = self._result(await self.run({"messages": [HumanMessage(content=END_COMMAND)], "live": None}))
        try:
            if self.thread_id:
                await self._retire(self.thread_id)
        except OUTAGE:
            # Closed once Redis answers: resuming the ended thread would replay its stale log
            # (its end ran in memory), re-settling outcomes reported during the outage as unknown.
            self._unclosed = self.thread_id
        self.thread_id, self._values, self._fallback = None, {}, None  # the next message opens a new session
        return result

    async def run(self, payload: dict[str, Any], *, on_update: UpdateHook | None = None) -> dict[str, Any]:
        """Run the graph once on this session's thread and return its state.

        ``on_update(node, update)`` sees each step's update as soon as the step finishes, before
        the turn's checkpoint is written: the voice front end sends the few-shot context to the
        Live model from there rather than after the whole run."""
        if self.thread_id is None:
            await self.open()
        if self._fallback is not None:
            await self._try_recover()
        for message in payload.get("messages") or []:
            # The turn's identity: ids of this turn's writes derive from its message id, so the
            # re-run below (or a retry, or an outbox replay) writes the same records, once.
            if getattr(message, "id", None) is None:
                message.id = f"m{uuid.uuid4().hex}"
            self._turn_key = message.id
        try:
            values = await self._stream(self._fallback or self.graph, payload, on_update)
        except OUTAGE as exc:
            if self._fallback is not None:
                raise
            log.warning("session: checkpointer unavailable (%s); continuing in memory", exc)
            await self._degrade()
            assert self._fallback is not None
            values = await self._stream(self._fallback, payload, on_update)
        except Exception as exc:
            log.error("session: turn failed (user %s, thread %s, degraded %s): %s: %s", user_tag(self.user_id),
                      self.thread_id, self._fallback is not None, type(exc).__name__, exc)
            raise
        self._values = dict(values)
        if self._fallback is None:
            try:
                await self.directory.touch(self.user_id)
            except OUTAGE:
                pass
        return self._values

    async def _stream(self, graph: CompiledStateGraph[Any, Any, Any, Any], payload: dict[str, Any],
                      on_update: UpdateHook | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        # One checkpoint per turn, written when the turn completes ("exit"), instead of one
        # per node: a turn that dies half-way is simply not there, and a turn costs one write.
        async for mode, chunk in graph.astream(payload, self.config, durability="exit",
                                               stream_mode=["updates", "values"]):
            if mode == "values":
                values = chunk
            elif on_update is not None:
                for node, update in chunk.items():
                    await on_update(node, update or {})
        return values

    async def _degrade(self) -> None:
        """Switch to an in-process checkpointer seeded with the last known state."""
        self._fallback = build_companion_graph(self.deps, checkpointer=InMemorySaver())
        self._log_at_outage = len(self._values.get("session_log", []))
        if self._values:
            await self._fallback.aupdate_state(self.config, self._values, as_node="record_outcome")

    async def _try_recover(self) -> None:
        """If Redis answers again, write the in-process state back and use Redis again."""
        try:
            await self._drop_idle_connections()
            await self.deps.memory.client.ping()
            assert self._fallback is not None
            snapshot = await self._fallback.aget_state(self.config)
            values = dict(snapshot.values)
            # session_log adds up (operator.add): hand back only what happened during the outage.
            log_length = len(values.get("session_log", []))
            values["session_log"] = values.get("session_log", [])[self._log_at_outage:]
            values.pop("timings", None)
            await self.graph.aupdate_state(self.config, values, as_node="record_outcome")
            self._log_at_outage = log_length  # handed back: a retry after a failure below must not add it twice
            await self._close_unclosed()
            if self.thread_id:
                await self.directory.adopt(self.user_id, self.thread_id)
            await self.deps.outbox.flush(self.deps.memory.registry)
        except OUTAGE:
            return
        log.info("session: Redis is back; state written back, %d writes still queued", len(self.deps.outbox))
        self._fallback = None

    async def _drop_idle_connections(self) -> None:
        # Idle pooled connections died with the server but still look open (redis-py finds out
        # only when one is used, failing that command): drop them after an outage.
        await self.deps.memory.client.connection_pool.disconnect(inuse_connections=False)

    async def _close_unclosed(self) -> None:
        if self._unclosed is not None:
            await self._drop_idle_connections()
            await self._retire(self._unclosed)
            self._unclosed = None

    async def _retire(self, thread_id: str) -> None:
        """An ended session: no longer the person's current one, and its thread expires."""
        await self.directory.close(self.user_id, thread_id)
        ttl_days = self.deps.settings.ended_thread_ttl_days
        if ttl_days is not None:
            await expire_thread(self.graph.checkpointer, thread_id, ttl_s=max(1, round(ttl_days * 86400)))

    def _result(self, values: dict[str, Any]) -> TurnResult:
        notice = values.get("notice")
        if self._fallback is not None and not notice:
            notice = MEMORY_OFFLINE_NOTICE
        last = values["messages"][-1].content if values.get("messages") else ""
        ended = bool(values.get("ended"))
        understanding = Understanding.model_validate(values["understanding"]) \
            if values.get("understanding") and not ended else None
        decision: Decision | None = values.get("decision")
        return TurnResult(
            understanding=understanding, act=understanding.act.value if understanding else None,
            tool=decision.ran if decision is not None and not ended else None,
            plan=PlanView.model_validate(values["plan"]) if values.get("plan") else None,
            safety=decision is not None and decision.safety and not ended,
            reply=values.get("reply") if not ended else str(last),
            thread_id=self.thread_id or "", decision=decision, few_shot=values.get("few_shot", []),
            used_memory_ids=values.get("used_memory_ids", []), evidence=values.get("evidence"),
            settled=values.get("settled", []), due=values.get("due", []), notice=notice,
            degraded=bool(values.get("degraded")) or self._fallback is not None, ended=bool(values.get("ended")),
            reflection=values.get("reflection"), timings=values.get("timings", {}),
        )
