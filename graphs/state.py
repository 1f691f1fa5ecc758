"""The companion graph's state: the conversation plus what each step of a turn worked out.

What a resumed session needs (the messages, the pending intervention, the safety check,
the plan, the session log) is checkpointed. The turn's scratch (``Scratch`` channels: the
decision, the neighbours, the few-shot rows, the evidence, the due items, the timings) is
typed (``graphs.turn``) and never checkpointed: it is there during the run and in its result.

``typing_extensions.TypedDict`` (not ``typing``) because LangGraph's API server derives
the JSON schema Studio shows from it, which needs the extensions' version on 3.11.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from graphs.turn import Decision, DueItem, Evidence, FewShot, PolicyEvidence, Scratch, ScratchSum

#: What a Gemini Live voice session asks of the graph (``voice.link``); None is a text turn.
#: ``refresh``: load the context only (system instruction, due check-ins).
#: ``heard``: the person's transcribed words: retrieve few-shot context, suggest a tool, settle outcomes.
#: ``tool_call``: the voice model called tools (an AI message with ``tool_calls``): run and record them.
LiveStep = Literal["refresh", "heard", "tool_call"]


def merge_timings(old: dict[str, float] | None, new: dict[str, float] | None) -> dict[str, float]:
    """Per-step timings of the current run (a scratch channel: every run starts empty)."""
    return {**(old or {}), **(new or {})}


def either(old: bool | None, new: bool | None) -> bool:
    """Degraded if any step of the run found memory offline (load_context and retrieval run side by side)."""
    return bool(old) or bool(new)


def latest_notice(old: str | None, new: str | None) -> str | None:
    """The newest notice a step gave (a step that has none leaves the last one standing)."""
    return new if new is not None else old


def joined(old: list[str] | None, new: list[str] | None) -> list[str]:
    """The memory records every step of the run drew on, in order."""
    return [*(old or []), *(i for i in (new or []) if i not in (old or []))]


class InputState(TypedDict):
    """What a caller sends: the conventional LangGraph chat input. A human message of
    ``/end`` ends the session (the reflect step runs). ``live`` is set only by the voice
    front end (see :data:`LiveStep`)."""

    messages: Annotated[list[AnyMessage], add_messages]
    live: NotRequired[LiveStep | None]


class CompanionState(InputState, total=False):
    """The whole state of one session (one LangGraph thread)."""

    # load_context
    context: str  # every memory element's prompt section, rendered
    style: dict[str, bool]  # StyleProfile fields from the consented profile
    due: Annotated[list[DueItem], Scratch(list)]  # check-ins and reminders that fell due before this turn
    country: str | None  # ISO country from the profile's locale or time zone (crisis resources)
    pool_consent: bool  # their outcomes may count in the population pool (Profile.consent_pooled_learning)
    # understand
    understanding: dict[str, Any] | None  # graphs.understanding.Understanding of the message
    asked_outcome: bool  # the last reply asked "did that help?" (asked once, never twice in a row)
    safety_check: str | None  # the message the last reply asked "are you safe?" about (classifier-only crisis)
    subject: str | None  # this turn: that message again, when they answered the check with an all-clear
    after_crisis: bool | None  # the last reply was the safety reply to a crisis they said plainly
    # retrieve_few_shot (the message's embedding is computed once, in understand)
    few_shot: Annotated[list[FewShot], Scratch(list)]  # the examples shown to the model
    few_shot_prompt: str  # the same examples as prompt lines
    used_memory_ids: Annotated[list[str], ScratchSum(list, joined)]  # every memory record this turn drew on
    evidence: Annotated[Evidence | None, Scratch(object)]  # what the message says about the last intervention
    relevance: Annotated[dict[str, float], Scratch(dict)]  # situation-to-tool similarity (the general prior)
    neighbors: Annotated[PolicyEvidence | None, Scratch(object)]  # similar past tries, per-tool results, the pool
    # choose_intervention
    decision: Annotated[Decision | None, Scratch(object)]  # the tool chosen (or none), its arguments, why
    # respond
    reply: str
    timings: Annotated[dict[str, float], ScratchSum(dict, merge_timings)]  # ms per step; "model" = chat-model time
    # record_outcome
    last_intervention_id: str | None  # the newest intervention of this session, pending until settled
    settled: Annotated[list[dict[str, Any]], Scratch(list)]  # outcomes settled this turn
    session_log: Annotated[list[dict[str, Any]], operator.add]  # every intervention and outcome this session
    plan: dict[str, Any] | None  # the plan after this turn: task, steps, current (1-based), done
    # degraded mode
    degraded: Annotated[bool, ScratchSum(bool, either)]  # this run found memory offline
    notice: Annotated[str | None, ScratchSum(object, latest_notice)]  # a calm one-line notice (e.g. memory offline)
    # session
    turn: int
    last_activity: float
    ended: bool
    reflection: str | None
