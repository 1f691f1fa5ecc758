"""The voice front end's link to the companion graph: every voice event becomes a graph run
on the person's session (one thread, the same as a text session's), so memories, tools and
outcomes go through the same nodes whichever way the person talks.

Runs are serialised (one at a time per session, in arrival order): a tool call in the same
spoken turn must see the outcome its heard words settled. A run that fails does not end
the voice session: the link answers with what it has and says the session is degraded.
Each run is one turn (``graphs.tracing.turn_scope``): its log lines carry the turn's id and
the server's metrics time it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from graphs.session import MAX_MESSAGE_CHARS, MEMORY_OFFLINE_NOTICE, OUTAGE, CompanionSession, InvalidInput, TurnResult
from graphs.tracing import turn_scope
from graphs.turn import NO_DECISION, Decision, DueItem, FewShot
from voice.events import FeedbackNoted, PlanInfo
from voice.instructions import live_instruction, safety_prompt

log = logging.getLogger(__name__)
#: What a text turn gets when the graph could not run at all (memory and the in-process fallback both failed).
OFFLINE_REPLY = "I'm here, but something went wrong on my side just now. Could you say that again?"
ContextHook = Callable[[str], Awaitable[None]]


class ToolCall(BaseModel):
    """A tool call from the voice model."""

    id: str = Field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}", description="The call's id.")
    name: str = Field(description="The tool's name.")
    args: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")


class ToolResult(BaseModel):
    """What a tool call returned, for the voice model's tool response."""

    id: str = Field(description="The call's id.")
    name: str = Field(description="The tool's name.")
    content: str = Field(description="The result in words (or the error).")
    ok: bool = Field(True, description="False when the tool failed or its arguments were wrong.")


class Heard(BaseModel):
    """What the graph made of the person's words."""

    instruction: str = Field(description="The system instruction with this turn's few-shot context.")
    memories: list[FewShot] = Field(default_factory=list, description="The few-shot examples used.")
    decision: Decision = Field(NO_DECISION, description="What the graph decided (``suggested``: the policy's tool).")
    due: list[DueItem] = Field(default_factory=list, description="Check-ins/reminders that fell due.")
    settled: list[dict[str, Any]] = Field(default_factory=list, description="Outcomes settled by these words.")
    degraded: bool = Field(False, description="True when memory was unavailable for this turn.")
    safety: str | None = Field(None, description="The safety note to speak now, when the words were a crisis.")

    @property
    def suggested(self) -> str | None:
        """The tool the policy suggests for these words (None: it suggests none)."""
        return self.decision.suggested

    @property
    def why(self) -> str | None:
        """Why, in words for the person (the policy's evidence line)."""
        return self.decision.suggested_why


class CompanionLink:
    """One person's voice session as graph runs (see the module docstring)."""

    def __init__(self, session: CompanionSession) -> None:
        self.session = session
        self.user_id = session.user_id
        self._lock = asyncio.Lock()
        self.instruction = ""
        self.degraded = False  # the last run went without memory (a gauge of /metrics counts these)

    async def resume(self) -> TurnResult | None:
        """Resume the person's session (or start one); an idle one is ended first and returned."""
        async with self._lock:
            return await self.session.open()

    async def open(self) -> tuple[str, list[DueItem]]:
        """Load the person's context: the first system instruction, and anything already due."""
        values = await self._run({"messages": [], "live": "refresh"})
        self.instruction = live_instruction(values)
        return self.instruction, list(values.get("due") or [])

    async def refresh(self) -> list[DueItem]:
        """Re-load the context; returns the check-ins and reminders that fell due."""
        values = await self._run({"messages": [], "live": "refresh"})
        return list(values.get("due") or [])

    async def heard(self, text: str, *, said: str = "", on_context: ContextHook | None = None) -> Heard:
        """The person said ``text`` (after the companion said ``said``): retrieve few-shot context and
        settle outcomes. ``on_context`` gets the new instruction as soon as it is known, before
        the run's checkpoint is written."""
        text = text.strip()[:MAX_MESSAGE_CHARS]
        if not text:
            raise InvalidInput("nothing was heard", field="text")
        messages: list[Any] = [AIMessage(content=said.strip())] if said.strip() else []
        messages.append(HumanMessage(content=text))
        seen: dict[str, Any] = {}
        sent = False

        async def step(node: str, update: dict[str, Any]) -> None:
            nonlocal sent
            seen.update(update)
            if node == "choose_intervention" and on_context is not None and not sent:
                sent = True
                await on_context(live_instruction({**self.session.values, **seen}))

        values = await self._run({"messages": messages, "live": "heard"}, on_update=step)
        self.instruction = live_instruction(values) if values else self.instruction
        if on_context is not None and not sent:  # the run failed before the choice: send what we have
            await on_context(self.instruction)
        decision = values.get("decision") or NO_DECISION
        return Heard(instruction=self.instruction, memories=list(values.get("few_shot") or []), decision=decision,
                     safety=safety_prompt(values) if decision.safety else None,
                     due=list(values.get("due") or []), settled=list(values.get("settled") or []),
                     degraded=bool(values.get("degraded")) or not values)

    async def tool_calls(self, calls: list[ToolCall]) -> list[ToolResult]:
        """Run the voice model's tool calls through the graph (recorded as interventions)."""
        if not calls:
            return []
        message = AIMessage(content="", tool_calls=[{"name": c.name, "args": c.args, "id": c.id, "type": "tool_call"}
                                                    for c in calls])
        by_id: dict[str, ToolMessage] = {}

        async def step(node: str, update: dict[str, Any]) -> None:
            # The results as the tools step returned them (the run's end drops tool plumbing from the state).
            if node == "tools":
                by_id.update((m.tool_call_id, m) for m in update.get("messages") or [] if isinstance(m, ToolMessage))

        await self._run({"messages": [message], "live": "tool_call"}, on_update=step)
        results = []
        for call in calls:
            found = by_id.get(call.id)
            if found is None:
                results.append(ToolResult(id=call.id, name=call.name, ok=False,
                                          content="The tool could not run just now (memory is offline)."))
            else:
                results.append(ToolResult(id=call.id, name=call.name, content=found.text,
                                          ok=found.status != "error"))
        return results

    async def send_text(self, text: str) -> TurnResult:
        """A whole text turn (the offline voice path: speech-to-text in, the graph's reply out)."""
        async with self._lock:
            with turn_scope("text"):
                try:
                    result = await self.session.send(text)
                except OUTAGE as exc:
                    # As in _run: the session already fell back to memory and failed again. Answer
                    # calmly without the graph; the person's words were not taken in, so say so.
                    log.error("voice: text turn failed (%s); carrying on without memory this turn", exc)
                    result = TurnResult(reply=OFFLINE_REPLY, thread_id=self.session.thread_id or "",
                                        notice=MEMORY_OFFLINE_NOTICE, degraded=True)
            self.degraded = result.degraded
            return result

    async def plan_info(self) -> PlanInfo:
        """The current step and the next check-in, for the page."""
        try:
            plan, upcoming = await asyncio.gather(self.session.plan(), self.session.upcoming(1))
        except OUTAGE as exc:
            log.info("plan info unavailable: %s", exc)
            return PlanInfo()
        nxt = upcoming[0] if upcoming else None
        return PlanInfo(step=plan.current_step if plan else None, task=plan.task if plan else None,
                        steps=list(plan.steps) if plan else [], done=bool(plan and plan.done),
                        current=plan.current + 1 if plan and not plan.done else None,
                        next_checkin={"what": nxt.text, "kind": nxt.kind, "due_at": nxt.due_at} if nxt else None)

    async def feedback(self, helped: bool) -> FeedbackNoted:
        """A thumbs up or down on the last suggestion: explicit feedback, read as its outcome."""
        async with self._lock:
            with turn_scope("feedback"):
                result = await self.session.send("/yes" if helped else "/no")
            self.degraded = result.degraded
        return FeedbackNoted(helped=helped, settled=bool(result.settled))

    async def due_now(self) -> list[DueItem]:
        """Check-ins and reminders due now (taken from the schedule), or ``[]``. A cheap read
        first: the graph's refresh run, which pops them, happens only when something is due."""
        try:
            upcoming = await self.session.upcoming(1)
        except OUTAGE:
            return []
        return await self.refresh() if upcoming and upcoming[0].due_at <= time.time() else []

    async def end(self) -> str | None:
        """End the session: the reflect step runs; returns its insight."""
        async with self._lock:
            try:
                with turn_scope("end"):
                    return (await self.session.end()).reflection
            except OUTAGE as exc:
                log.warning("voice: could not end the session cleanly (%s); its writes wait in the outbox", exc)
                return None

    async def _run(self, payload: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        async with self._lock:
            start = time.perf_counter()
            with turn_scope(str(payload.get("live") or "text")):
                try:
                    values = await self.session.run(payload, **kwargs)
                except OUTAGE as exc:
                    # The session already fell back to memory and failed again: answer without the graph.
                    log.error("voice: graph run failed (%s); carrying on without memory this turn", exc)
                    values = {}
                finally:
                    log.debug("voice: %s run took %.1f ms", payload.get("live"), (time.perf_counter() - start) * 1000)
            self.degraded = bool(values.get("degraded")) or not values
            return values
