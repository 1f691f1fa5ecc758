"""Step 7, reflect (at session end): one short insight, the person's current state, and
their feedback summary, so the next session starts from what this one learned.

The insight is drafted from the session's own outcomes (which tool helped, which did not);
the chat model may reword it, and its wording is kept only when it still says the same
thing (embedding similarity to the draft), so a small model cannot invent lessons.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.common import ms_since
from graphs.outbox import OutboxFull, RememberReflection, SettleOutcome, UpdateState
from graphs.state import CompanionState
from graphs.style import StyleProfile, enforce_style
from graphs.tracing import traced
from memories.current_state import CurrentStateUpdate, Mood
from memories.errors import MemoryUnavailable, RecordNotFound
from memories.feedback import FeedbackMemory
from memories.outcomes import FAILED, OUTCOME_VALUE, Outcome
from memories.reflections import NewReflection
from tools.catalog import TOOL_SPECS

log = logging.getLogger(__name__)
KEEP_MODEL_WORDING_FROM = 0.6  # similarity to the draft above which the model's wording is kept


class Insight(BaseModel):
    """The chat model's rewording of the session's lesson."""

    insight: str = Field(description="One short sentence about what helps this person.", max_length=200)


def session_summary(log_entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Interventions of the session with their settled outcome, and those still pending."""
    outcomes = {e["id"]: e["outcome"] for e in log_entries if e["kind"] == "outcome"}
    tried = [{**e, "outcome": outcomes.get(e["id"])} for e in log_entries if e["kind"] == "intervention"]
    return tried, [t["id"] for t in tried if t["outcome"] is None]


def draft_insight(tried: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """The session's lesson in one sentence, plus topic tags."""
    scored = [(t, OUTCOME_VALUE[Outcome(t["outcome"])]) for t in tried if t["outcome"]]
    scored = [(t, v) for t, v in scored if v is not None and t.get("tool")]
    if not scored:
        return None, []
    best_tool, best = max(((t["tool"], v) for t, v in scored), key=lambda p: p[1])
    said = next(t["said"] for t, v in scored if t["tool"] == best_tool and v == best)
    activity = TOOL_SPECS[best_tool].activity if best_tool in TOOL_SPECS else best_tool
    if best >= 0.6:
        return f'{activity.capitalize()} helped when they said "{said[:80]}".', [best_tool]
    return f'{activity.capitalize()} did not help when they said "{said[:80]}"; try something else.', [best_tool]


def session_mood(tried: list[dict[str, Any]]) -> Mood | None:
    """A coarse mood from how the session's interventions went."""
    values = [OUTCOME_VALUE[Outcome(t["outcome"])] for t in tried if t["outcome"]]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return Mood.FOCUSED if sum(values) / len(values) >= 0.5 else Mood.FRUSTRATED


async def word_insight(deps: CompanionDeps, draft: str) -> str:
    """The model's wording of the draft if it keeps the meaning, else the draft."""
    try:
        answer = await deps.chat_model.with_structured_output(Insight).ainvoke(
            f"Rewrite as one short, kind sentence about what helps this person: {draft}")
        words = enforce_style(answer.insight, draft=draft, profile=StyleProfile()).text
        a, b = await deps.memory.embeddings.aembed_documents([draft, words], remember=False)
        if float(np.dot(a, b)) >= KEEP_MODEL_WORDING_FROM:
            return words
    except Exception as exc:  # the draft is always a correct lesson
        log.debug("reflect: keeping the drafted insight (%s)", exc)
    return draft


@traced("reflect")
async def reflect(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """End the session: remember one insight, update the current state, refresh feedback."""
    start = time.perf_counter()
    user = Configuration.from_runnable_config(config).user_id
    registry = deps.memory.registry
    tried, pending = session_summary(state.get("session_log") or [])
    draft, tags = draft_insight(tried)
    insight = await word_insight(deps, draft) if draft else None
    wins = [f'"{t["said"][:120]}": {t["outcome"].replace("_", " ")}' for t in tried
            if t["outcome"] and (OUTCOME_VALUE[Outcome(t["outcome"])] or 0) >= 0.6]
    losses = [f'"{t["said"][:120]}": {t["tool"]} did not help' for t in tried
              if t["outcome"] and Outcome(t["outcome"]) in FAILED]
    mood = session_mood(tried)
    writes = [SettleOutcome(user_id=user, intervention_id=i, outcome=Outcome.UNKNOWN) for i in pending]
    writes.append(UpdateState(user_id=user, wins=wins[-3:], losses=losses[-3:],
                              patch=CurrentStateUpdate(mood=mood) if mood else None))
    if insight:
        writes.append(RememberReflection(user_id=user, reflection=NewReflection(insight=insight, tags=tags)))
    notice = None
    try:
        for write in writes:
            try:
                await deps.outbox.run_or_queue(write, registry)
            except RecordNotFound:  # a pending intervention that expired or was forgotten
                log.info("reflect: skipped %s for a record that is gone", write.op)
        if (feedback := registry.get(FeedbackMemory)) is not None and not len(deps.outbox):
            await feedback.refresh_summary(user)
    except (OutboxFull, MemoryUnavailable) as exc:
        log.error("reflect: %s", exc)
        notice = "I couldn't save everything from this session; the rest will be saved when memory is back."
    summary = insight or "No lesson yet this time: we didn't get to try anything together."
    return {"messages": [AIMessage(content=f"Session saved. {summary}")], "ended": True, "reflection": insight,
            "notice": notice, "timings": {"reflect": ms_since(start)}}
