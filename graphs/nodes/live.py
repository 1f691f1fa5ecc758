"""Voice step, accept a tool call: the Gemini Live model called tools; the graph runs them
(the ``tools`` node, the same tools as a text turn) and records the intervention.

The call arrives as an AI message with ``tool_calls`` (the voice front end converts the
Live ``toolCall``); this node turns it into the turn's decision so ``respond`` and
``record_outcome`` treat it exactly like a tool the policy chose.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from graphs.deps import CompanionDeps
from graphs.nodes.common import ms_since
from graphs.state import CompanionState
from graphs.tracing import traced
from graphs.turn import Decision
from tools.catalog import INTERVENTION_TOOLS


@traced("accept_tool_call")
async def accept_tool_call(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Make the voice model's tool call this run's decision (the first intervention tool, if any)."""
    start = time.perf_counter()
    last = state["messages"][-1] if state["messages"] else None
    calls = list(getattr(last, "tool_calls", None) or [])
    chosen = next((c for c in calls if c["name"] in INTERVENTION_TOOLS), calls[0] if calls else None)
    decision = Decision(tool=None, source="none", reason="no tool call")
    if chosen is not None:
        decision = Decision(tool=chosen["name"], args=dict(chosen.get("args") or {}), source="voice",
                            intervention=chosen["name"] in INTERVENTION_TOOLS, reason="the voice model called it")
    # Evidence and due items belong to the words that came before (already settled and spoken).
    return {"decision": decision, "evidence": None, "due": [], "settled": [],
            "timings": {"accept_tool_call": ms_since(start)}}
