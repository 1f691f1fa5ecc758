"""The companion graph: one turn, top to bottom.

    START ─┬─ "/end" ─────────────────────────────────────────────────────────────► reflect ─► END
           └► understand ─┬► load_context ──────┬► choose_intervention ─┬► tools ─┐
                          ├► retrieve_few_shot ─┘                       └─────────┴► respond
                          └── crisis: load_context only                              ► record_outcome ► END

``understand`` makes the turn's one MiniLM pass (the tuned reading and the retrieval vector);
then the memory sections (``load_context``) and the few-shot search (``retrieve_few_shot``)
load side by side, both Redis-bound and both on that cached vector; the choice waits for both.

A Gemini Live voice session (``voice/``) drives the same graph in three shorter runs,
chosen by the input's ``live`` field, because the Live model speaks and calls tools itself:

    live="refresh"    load_context ► END                         (system instruction, due check-ins)
    live="heard"      understand ► load_context ∥ retrieve_few_shot ► choose_intervention ► record_outcome ► END
                      (few-shot context + the policy's suggestion for the Live model; settles outcomes)
    live="tool_call"  accept_tool_call ► tools ► respond ► record_outcome ► END
                      (the Live model's tool call runs the same tools and is recorded as an intervention)

Every entry point (terminal chat, LangGraph Studio, voice, tests, the learning
evaluation) drives this same graph; only the dependencies bound in differ.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.agent import choose_intervention
from graphs.nodes.common import is_end_command
from graphs.nodes.context import load_context
from graphs.nodes.live import accept_tool_call
from graphs.nodes.outcome import record_outcome
from graphs.nodes.reflect import reflect
from graphs.nodes.respond import respond
from graphs.nodes.retrieve import retrieve_few_shot
from graphs.nodes.understand import understand
from graphs.state import CompanionState, InputState


def _start(state: CompanionState) -> str | list[str]:
    if is_end_command(state["messages"]):
        return "reflect"
    if state.get("live") == "tool_call":
        return "accept_tool_call"
    return "load_context" if state.get("live") == "refresh" else "understand"


def _after_context(state: CompanionState) -> str:
    return END if state.get("live") == "refresh" else "choose_intervention"


def _after_understanding(state: CompanionState) -> list[str]:
    # A crisis needs no few-shot examples and no policy: the context (the country's crisis lines), then the reply.
    if (state.get("understanding") or {}).get("crisis"):
        return ["load_context"]
    return ["load_context", "retrieve_few_shot"]


def _after_choice(state: CompanionState) -> str:
    if state.get("live") == "heard":
        return "record_outcome"
    last = state["messages"][-1] if state["messages"] else None
    return "tools" if getattr(last, "tool_calls", None) else "respond"


def build_companion_graph(
    deps: CompanionDeps, *, checkpointer: BaseCheckpointSaver[Any] | None = None, name: str = "companion"
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the companion graph over ``deps`` (with a checkpointer for durable sessions)."""
    # The context schema is what Studio shows as the run's form (``user_id``, ``seed``); nodes
    # read the same fields from ``configurable`` (``Configuration.from_runnable_config``).
    builder = StateGraph(CompanionState, context_schema=Configuration, input_schema=InputState)
    builder.add_node("load_context", partial(load_context, deps=deps))
    builder.add_node("understand", partial(understand, deps=deps))
    builder.add_node("retrieve_few_shot", partial(retrieve_few_shot, deps=deps))
    builder.add_node("choose_intervention", partial(choose_intervention, deps=deps))
    # ToolNode returns argument errors and tool exceptions to the model as error ToolMessages.
    builder.add_node("tools", ToolNode(deps.tools, handle_tool_errors=True))
    builder.add_node("respond", partial(respond, deps=deps))
    builder.add_node("record_outcome", partial(record_outcome, deps=deps))
    builder.add_node("reflect", partial(reflect, deps=deps))
    builder.add_node("accept_tool_call", partial(accept_tool_call, deps=deps))
    builder.add_conditional_edges(START, _start, ["load_context", "understand", "reflect", "accept_tool_call"])
    builder.add_conditional_edges("load_context", _after_context, ["choose_intervention", END])
    builder.add_conditional_edges("understand", _after_understanding, ["load_context", "retrieve_few_shot"])
    builder.add_edge("retrieve_few_shot", "choose_intervention")
    builder.add_conditional_edges("choose_intervention", _after_choice, ["tools", "respond", "record_outcome"])
    builder.add_edge("accept_tool_call", "tools")
    builder.add_edge("tools", "respond")
    builder.add_edge("respond", "record_outcome")
    builder.add_edge("record_outcome", END)
    builder.add_edge("reflect", END)
    return builder.compile(checkpointer=checkpointer, name=name)
