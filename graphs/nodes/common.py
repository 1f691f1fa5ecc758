"""Small helpers the nodes share."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage

MEMORY_OFFLINE_NOTICE = "My memory is offline for a moment, so I'll keep going without it; nothing you do is lost."
END_COMMAND = "/end"


def message_text(message: AnyMessage) -> str:
    """A message's plain text (content blocks joined)."""
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)


def last_human_text(messages: Sequence[AnyMessage]) -> str:
    """What the person said last ("" if nothing)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or getattr(message, "type", "") == "human":
            return message_text(message).strip()
    return ""


def subject_text(state: Mapping[str, Any]) -> str:
    """What this turn is about: the moment they described before a safety check they answered
    with an all-clear (``subject``), otherwise what they said last."""
    return state.get("subject") or last_human_text(state["messages"])


def is_end_command(messages: Sequence[AnyMessage]) -> bool:
    """True when the newest message is the person's ``/end``."""
    return bool(messages) and messages[-1].type == "human" and message_text(messages[-1]).strip() == END_COMMAND


def ms_since(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` value), rounded."""
    return round((time.perf_counter() - start) * 1000, 3)


def this_turn(messages: list[AnyMessage]) -> list[AnyMessage]:
    """Messages after the person's latest message."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return messages[index + 1:]
    return list(messages)


def current_exchange(state: Mapping[str, Any]) -> list[AnyMessage]:
    """The messages this run is about: the turn's messages after the person's latest words, or,
    for a voice model's tool call, that call and its results only (one spoken turn can hold
    several tool calls, each its own run; an earlier call's events must not count twice)."""
    messages = state["messages"]
    if state.get("live") == "tool_call":
        for index in range(len(messages) - 1, -1, -1):
            if getattr(messages[index], "tool_calls", None):
                return messages[index + 1:]
    return this_turn(messages)


_WRITE_IDS = uuid.UUID("5b1d3c1e-7d0a-4c55-9a43-2f6f4b8c9e10")


def turn_key(state: Mapping[str, Any]) -> str | None:
    """What identifies this run: the person's latest message id, or for a voice model's tool
    call, that call's message id. Stable across a re-run of the same turn."""
    messages = state.get("messages") or []
    for message in reversed(messages):
        if state.get("live") == "tool_call" and getattr(message, "tool_calls", None) or message.type == "human":
            return message.id
    return None


def write_id(user_id: str, state: Mapping[str, Any], kind: str) -> str:
    """The id of one of this turn's writes (``kind`` names which): derived from the turn, so
    a re-run, a retry or an outbox replay of the turn writes the same record once. A run with
    no message id (none is ever stored without one) gets a fresh id."""
    key = turn_key(state)
    if key is None:
        return uuid.uuid4().hex
    return uuid.uuid5(_WRITE_IDS, f"{user_id}\x1f{key}\x1f{kind}").hex
