"""Step 5, respond: the chat model words the reply around a draft the graph already trusts.

The draft comes from the tool's result (or an acknowledgement), so a reply is always
possible; the model makes it warmer and personal, and the style guard
(``graphs.style``) falls back to the draft when the model's words break the coaching
style (too long, judgmental, figurative for a literal-language profile, gibberish).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from graphs.deps import CompanionDeps
from graphs.nodes.common import current_exchange, last_human_text, message_text, ms_since
from graphs.prompts import reply_messages
from graphs.state import CompanionState
from graphs.style import StyleProfile, enforce_style, transition_warning
from graphs.tracing import traced
from memories.ranking import FAILED, Outcome
from tools.catalog import TOOL_SPECS

log = logging.getLogger(__name__)

GENERIC = "I'm here with you. What's one tiny thing you could start with?"
WENT_WELL = "That counts, nice work! What's the next tiny step?"
WENT_BADLY = "That's okay, that one didn't fit you. We'll try a different way."
TOOL_TROUBLE = "Let's keep it simple: what's one tiny thing you could start with?"


def history(messages: list[AnyMessage], limit: int) -> list[AnyMessage]:
    """Earlier conversation for the model: words only (no tool plumbing), newest ``limit``."""
    earlier = messages[:-1] if messages and messages[-1].type == "human" else messages
    words = [m for m in earlier if m.type in ("human", "ai") and message_text(m).strip()]
    return words[-limit:] if limit else []


def build_draft(state: CompanionState) -> str:
    """The reply the graph can stand behind without a model."""
    decision = state.get("decision") or {}
    tool_messages = [m for m in current_exchange(state) if isinstance(m, ToolMessage)]
    acknowledging = decision.get("source") == "acknowledge"
    if tool_messages and not (acknowledging and tool_messages[0].status == "error"):
        result = tool_messages[0]
        body = TOOL_TROUBLE if result.status == "error" else message_text(result).strip() or GENERIC
    elif acknowledging:  # also when logging the win failed (memory offline): still celebrate it
        outcome = (state.get("evidence") or {}).get("outcome")
        body = WENT_BADLY if outcome and Outcome(outcome) in FAILED else WENT_WELL
    else:
        body = GENERIC
    prefix = []
    for item in state.get("due") or []:
        prefix.append(f"Check-in: how is {item['text']} going?" if item["kind"] == "checkin"
                      else f"Reminder: {item['text']}.")
    tool = decision.get("tool")
    if (state.get("style") or {}).get("autism") and decision.get("intervention") and tool in TOOL_SPECS:
        prefix.append(transition_warning(TOOL_SPECS[tool].activity))
    return " ".join([*prefix, body])


@traced("respond")
async def respond(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Write the reply: draft, then the chat model's wording within the style guard."""
    start = time.perf_counter()
    draft = build_draft(state)
    if state.get("live") == "tool_call":
        # The voice model speaks in its own words from the tool's result; the draft is kept as
        # what this intervention said (record_outcome stores it), not added as a spoken message.
        return {"reply": draft, "timings": {"respond": ms_since(start), "model_reply": 0.0}}
    profile = StyleProfile(**(state.get("style") or {}))
    context = state.get("context", "")
    if state.get("few_shot_prompt"):
        context = f"{context}\n\nWhat helped them before:\n{state['few_shot_prompt']}".strip()
    message = last_human_text(state["messages"])
    model_start = time.perf_counter()
    words = draft
    if deps.reword_replies:
        messages = reply_messages(context=context, history=history(state["messages"], deps.settings.history_messages),
                                  message=message, draft=draft, profile=profile)
        try:
            words = message_text(await deps.chat_model.ainvoke(messages))
        except Exception as exc:  # a model outage degrades the wording, never the turn
            log.warning("respond: chat model failed (%s); using the draft", exc)
    model_ms = ms_since(model_start)
    styled = enforce_style(words, draft=draft, profile=profile, user_message=message)
    reply = styled.text
    return {"messages": [AIMessage(content=reply)], "reply": reply,
            "timings": {"respond": ms_since(start) - model_ms, "model_reply": model_ms}}
