"""Step 5, respond: the chat model words the reply around a draft the graph already trusts.

The draft comes from the tools' results (reworded from their facts, one of several
wordings picked by the seeded turn RNG), the graph's own lines (greeting, goodbye, the
check question) or the safety reply, so a reply is always possible; the model makes it
warmer and personal, and the style guard (``graphs.style``) falls back to the draft when
the model's words break the coaching style. The safety reply and a listed plan are said
exactly as drafted. No reply is the same as the one before it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from graphs import replies
from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.common import current_exchange, last_human_text, message_text, ms_since
from graphs.policy import turn_rng
from graphs.prompts import reply_messages
from graphs.state import CompanionState
from graphs.style import StyleProfile, enforce_style, transition_warning
from graphs.tracing import traced
from graphs.turn import NO_DECISION
from graphs.understanding.acts import CrisisKind, Question, Understanding
from graphs.understanding.safety import after_crisis_reply, safety_check_reply, safety_reply
from tools.catalog import TOOL_SPECS

log = logging.getLogger(__name__)

TOOL_TROUBLE = "Let's keep it simple: what's one tiny thing you could start with?"
_OPENERS = ("Okay.", "Alright.", "Sure.")


def history(messages: list[AnyMessage], limit: int) -> list[AnyMessage]:
    """Earlier conversation for the model: words only (no tool plumbing), newest ``limit``."""
    earlier = messages[:-1] if messages and messages[-1].type == "human" else messages
    words = [m for m in earlier if m.type in ("human", "ai") and message_text(m).strip()]
    return words[-limit:] if limit else []


def previous_reply(messages: list[AnyMessage]) -> str | None:
    """What the companion said last, before this turn."""
    earlier = messages[: max(len(messages) - len(current_exchange({"messages": messages})) - 1, 0)]
    for message in reversed(earlier):
        if message.type == "ai" and message_text(message).strip():
            return message_text(message).strip()
    return None


def _tool_words(result: ToolMessage, state: CompanionState, rng: Any, avoid: str | None) -> str:
    artifact = result.artifact if isinstance(result.artifact, dict) else {}
    if result.status == "error":
        return TOOL_TROUBLE
    reading = Understanding.model_validate(state["understanding"]) if state.get("understanding") else None
    if artifact.get("event") == "current_step" and reading and reading.question is Question.PLAN:
        listing = replies.plan_lines(artifact.get("steps") or [], artifact.get("index"))
        return f"Here's your plan:\n{listing}"
    if artifact.get("event") == "current_step" and reading and reading.question is Question.PROGRESS:
        return (f"You've done {artifact.get('index', 0)} of {artifact.get('total')} steps. "
                f"Now: {artifact.get('step')}.")
    return replies.tool_line(artifact, rng, avoid) or message_text(result).strip() or replies.line("generic", rng)


def build_draft(state: CompanionState, rng: Any, avoid: str | None = None, *, country: str | None = None) -> str:
    """The reply the graph can stand behind without a model."""
    decision = state.get("decision") or NO_DECISION
    say = decision.say
    if say == "safety":
        reading = state.get("understanding") or {}
        if reading.get("source") == "classifier":  # the explicit patterns are sure; the classifier is asked about
            return safety_check_reply(country)
        return safety_reply(CrisisKind(reading["crisis_kind"]) if reading.get("crisis_kind") else None, country)
    if say == "after_crisis":
        return after_crisis_reply(country)
    results = [m for m in current_exchange(state) if isinstance(m, ToolMessage)]
    parts = [_tool_words(r, state, rng, avoid) for r in results]
    if say and not (decision.source == "acknowledge" and results and results[0].status != "error"):
        facts = decision.facts
        key = "memory_empty" if say == "memory" and not facts.get("memory") else say
        if key in ("greeting_plan", "goodbye_plan") and not facts:
            key = key.removesuffix("_plan")
        parts.append(replies.line(key, rng, avoid, **facts))
    if not parts:
        parts.append(replies.line("generic", rng, avoid))
    prefix = [replies.line("all_clear", rng)] if state.get("subject") else []
    prefix.extend(item.message for item in state.get("due") or [])
    tool = decision.tool
    if (state.get("style") or {}).get("autism") and decision.intervention and tool in TOOL_SPECS:
        prefix.append(transition_warning(TOOL_SPECS[tool].activity))
    return " ".join([*prefix, *parts])


@traced("respond")
async def respond(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Write the reply: draft, then the chat model's wording within the style guard."""
    start = time.perf_counter()
    cfg = Configuration.from_runnable_config(config)
    rng = turn_rng(cfg.user_id, cfg.seed or cfg.thread_id, state.get("turn", 0), "wording")
    before = previous_reply(state["messages"])
    draft = build_draft(state, rng, before, country=state.get("country"))
    if state.get("live") == "tool_call":
        # The voice model speaks in its own words from the tool's result; the draft is kept as
        # what this intervention said (record_outcome stores it), not added as a spoken message.
        return {"reply": draft, "timings": {"respond": ms_since(start), "model_reply": 0.0}}
    decision = state.get("decision") or NO_DECISION
    exact = decision.say == "safety" or "\n" in draft  # said word for word: safety, a listed plan
    profile = StyleProfile(**(state.get("style") or {}))
    context = state.get("context", "")
    if state.get("few_shot_prompt"):
        context = f"{context}\n\nWhat helped them before:\n{state['few_shot_prompt']}".strip()
    message = last_human_text(state["messages"])
    model_start = time.perf_counter()
    words = draft
    if deps.reword_replies and not exact:
        messages = reply_messages(context=context, history=history(state["messages"], deps.settings.history_messages),
                                  message=message, draft=draft, profile=profile)
        try:
            words = message_text(await deps.chat_model.ainvoke(messages))
        except Exception as exc:  # a model outage degrades the wording, never the turn
            log.warning("respond: chat model failed (%s); using the draft", type(exc).__name__)
            log.debug("respond: the chat model's error: %s", exc)  # may quote the prompt, so never above DEBUG
    model_ms = ms_since(model_start)
    reply = draft if exact else enforce_style(words, draft=draft, profile=profile, user_message=message).text
    if before and reply.strip() == before:
        reply = f"{rng.choice(_OPENERS)} {reply}"  # never the same words twice in a row
    return {"messages": [AIMessage(content=reply)], "reply": reply,
            "timings": {"respond": ms_since(start) - model_ms, "model_reply": model_ms}}
