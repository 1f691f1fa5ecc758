"""Step 6, record outcome: settle the last intervention from the evidence that followed,
then store this turn's intervention as pending.

Evidence, strongest first: what the person's message says (read in step 2), then tool
events of this turn (a completed step is progress; a rating of the reply). Writes go
through the outbox, so an outage delays them and loses none.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.messages import RemoveMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.common import (
    MEMORY_OFFLINE_NOTICE,
    current_exchange,
    message_text,
    ms_since,
    subject_text,
    write_id,
)
from graphs.outbox import OutboxFull, RecordIntervention, SettleOutcome
from graphs.state import CompanionState
from graphs.style import reply_problems, reply_quality
from graphs.tracing import traced
from graphs.turn import NO_DECISION, Decision, PlanView
from memories.errors import MemoryUnavailable, RecordNotFound
from memories.interventions import InterventionMemory, NewIntervention
from memories.outcomes import Outcome
from memories.records import MAX_TEXT_CHARS
from tools.store import SafetyEvent
from tools.writes import KeepSafetyEvent, latest_plan

log = logging.getLogger(__name__)
OUTBOX_FULL_NOTICE = ("My memory is offline and can't hold any more for now, so I couldn't save this moment; "
                      "the conversation goes on.")


def _plumbing(message: Any) -> bool:
    """A tool call or its result: how a run did its work, not words anyone said."""
    return message.type == "tool" or (message.type == "ai" and bool(getattr(message, "tool_calls", None))
                                      and not message_text(message).strip())


def checkpoint_trim(messages: list[Any], keep: int) -> list[Any]:
    """What leaves the checkpoint after a run: the run's tool plumbing (no later run reads it:
    the reply model's history is words only, and tool events count in their own run), and the
    oldest words beyond ``keep``. The state stays small, so every turn's checkpoint is cheap
    to write and to read back (what matters long-term is already in memory)."""
    plumbing = [m for m in messages if m.id and _plumbing(m)]
    words = [m for m in messages if m.id and not _plumbing(m)]
    return plumbing + words[: max(0, len(words) - keep)]


def intervention_record(state: CompanionState, decision: Decision) -> NewIntervention:
    """This turn's intervention as it is stored, with its reply's quality. Arguments that fail
    validation (a voice model's tool call can carry anything, e.g. 5,000 characters) are
    dropped rather than losing the intervention or failing the turn."""
    reply = state.get("reply") or "(no reply)"
    said = subject_text(state)[:MAX_TEXT_CHARS] or "(silence)"
    quality = reply_quality(reply_problems(reply, user_message=said,
                                           literal=bool((state.get("style") or {}).get("literal_language"))))
    fields = {"text": reply, "tool_name": decision.tool, "user_context": said, "quality": quality}
    try:
        return NewIntervention(**fields, tool_args=decision.args)
    except ValidationError as exc:
        # Only where it failed: pydantic's message repeats the input, which can be what they said.
        log.warning("record_outcome: %s's arguments not stored (%s)", decision.tool,
                    ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()))
        return NewIntervention(**fields)


def plan_summary(plan: Any) -> dict[str, Any] | None:
    """The plan as the UIs show it (:class:`PlanView`), as JSON: the state checkpoints it."""
    view = PlanView.of(plan)
    return view.model_dump(mode="json") if view is not None else None


async def safety_event(state: CompanionState, deps: CompanionDeps, user: str) -> str | None:
    """Keep the safety event (never an intervention, never a few-shot example)."""
    kind = (state.get("understanding") or {}).get("crisis_kind") or "unknown"
    event = SafetyEvent(kind=kind, at=time.time(), source="voice" if state.get("live") else "text")
    try:
        await deps.outbox.run_or_queue(KeepSafetyEvent(key=write_id(user, state, "safety"), user_id=user, event=event),
                                       deps.memory.registry)
    except OutboxFull as exc:
        log.error("record_outcome: safety event not stored (%s)", exc)
        return "My memory is full right now, so I couldn't note this moment; I'm still here with you."
    return None


def outcome_from_events(state: CompanionState) -> Outcome | None:
    """What this turn's tool events say about the last intervention."""
    for message in current_exchange(state):
        artifact = message.artifact if isinstance(message, ToolMessage) else None
        if not isinstance(artifact, dict):
            continue
        if artifact.get("event") == "step_completed":
            return Outcome.TASK_COMPLETED if artifact.get("plan_done") else Outcome.TASK_PROGRESS
        if artifact.get("event") == "rated":
            rating = int(artifact.get("rating", 3))
            if rating != 3:
                return {5: Outcome.TASK_PROGRESS, 4: Outcome.RE_ENGAGED, 2: Outcome.DISTRACTED}.get(
                    rating, Outcome.ABANDONED)
    return None


async def _target(state: CompanionState, deps: CompanionDeps, user: str) -> str | None:
    """The intervention the evidence is about: this session's newest pending one, or else the
    person's newest pending one within the settle window (e.g. from before a restart)."""
    if state.get("last_intervention_id"):
        return state["last_intervention_id"]
    interventions = deps.memory.registry.get(InterventionMemory)
    if interventions is None or state.get("degraded"):
        return None
    try:
        pending = await interventions.pending(user, limit=1)
    except MemoryUnavailable:
        return None
    window_s = deps.settings.settle_window_minutes * 60
    return pending[0].id if pending and time.time() - pending[0].created_at <= window_s else None


@traced("record_outcome")
async def record_outcome(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Settle what the evidence settles; record this turn's intervention as pending."""
    start = time.perf_counter()
    user = Configuration.from_runnable_config(config).user_id
    registry = deps.memory.registry
    update: dict[str, Any] = {"settled": [], "session_log": []}
    evidence = state.get("evidence")
    events = outcome_from_events(state)
    outcome = evidence.outcome if evidence is not None and evidence.outcome else events
    if outcome in (Outcome.TASK_PROGRESS, Outcome.RE_ENGAGED) and events is Outcome.TASK_COMPLETED:
        outcome = events  # they reported a step and it was the plan's last one
    decision = state.get("decision") or NO_DECISION
    last_id = state.get("last_intervention_id")
    if decision.safety:
        # Safety first: nothing is settled or learnt from this turn; the moment is kept as a safety event.
        notice = await safety_event(state, deps, user)
        deps.outbox.take_refused(user)  # said by safety_event's own notice
        reading = state.get("understanding") or {}
        # Only the classifier saw it: the reply asked "are you safe?", and an all-clear next turn
        # goes back to this message (graphs.nodes.understand).
        check = subject_text(state)[:MAX_TEXT_CHARS] if reading.get("source") == "classifier" else None
        return {"settled": [], "session_log": [], "asked_outcome": False, "last_intervention_id": last_id,
                "safety_check": check, "subject": None, "after_crisis": check is None,
                "plan": state.get("plan"), "notice": notice or state.get("notice"),
                "timings": {"record_outcome": ms_since(start)}}
    try:
        if outcome is not None and (target := await _target(state, deps, user)):
            try:
                await deps.outbox.run_or_queue(SettleOutcome(user_id=user, intervention_id=target, outcome=outcome,
                                                             contribute=bool(state.get("pool_consent", False))),
                                               registry)
            except RecordNotFound:  # expired, or forgotten at the person's request meanwhile
                log.info("record_outcome: intervention %s is gone; nothing to settle", target)
            entry = {"kind": "outcome", "id": target, "outcome": outcome.value}
            update["settled"].append(entry)
            update["session_log"].append(entry)
            last_id = None
        if decision.intervention and registry.get(InterventionMemory) is not None:
            record = intervention_record(state, decision)
            last_id = write_id(user, state, "intervention")
            await deps.outbox.run_or_queue(RecordIntervention(user_id=user, intervention_id=last_id, record=record),
                                           registry)
            update["session_log"].append({"kind": "intervention", "id": last_id, "tool": decision.tool,
                                          "said": record.user_context})
    except OutboxFull as exc:
        log.error("record_outcome: %s", exc)
    if len(deps.outbox):
        update.update(degraded=True, notice=state.get("notice")
                      or MEMORY_OFFLINE_NOTICE)
    if deps.outbox.take_refused(user):  # this turn's tools or writes found the outbox full: say so, plainly
        update["notice"] = OUTBOX_FULL_NOTICE
    if dropped := checkpoint_trim(state["messages"], deps.settings.keep_messages):
        update["messages"] = [RemoveMessage(id=m.id) for m in dropped]
    plan = state.get("plan")
    # The plan changes only through the plan tools: read it again only when one ran (or never was).
    plan_tools = {"create_microsteps", "mark_step_complete", "get_current_step"}
    ran = set(decision.called)
    if "plan" not in state or ran & plan_tools:
        try:  # the plan as the tools left it, even while their writes wait in the outbox
            plan = plan_summary(await latest_plan(deps.store, deps.outbox, user, offline=bool(state.get("degraded"))))
        except MemoryUnavailable:
            pass
    return {**update, "last_intervention_id": last_id, "asked_outcome": decision.say == "ask_outcome",
            "safety_check": None, "subject": None, "after_crisis": False,
            "plan": plan, "timings": {"record_outcome": ms_since(start)}}
