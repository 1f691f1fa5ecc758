"""The conversation dataset (``tests/data/conversations*.json``) and how a conversation is played.

A conversation is one person's sessions, each a list of things they say, each with the
behaviour a person needs at that turn (:class:`Expect`). Playing it through the graph
gives one record per turn (the graph's ``TurnResult`` plus what was said and expected) and
one per session end (the reflection, with the tools tried and how they went): the
``output`` every conversation scorer reads (``app.eval.scorers``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.eval.files import load_json_model
from graphs.scoring import decision_of, settled_after
from graphs.session import MAX_MESSAGE_CHARS, CompanionSession
from graphs.understanding.acts import Act
from memories.profile import ProfileMemory
from memories.registry import MemoryRegistry
from memories.validation import validate_user_id

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


class Expect(BaseModel):
    """What a person needs from the companion at one turn (unset: either way is fine)."""

    crisis: bool = Field(False, description="The message is a crisis: the safety response is due, no coaching.")
    tool: bool | None = Field(None, description="True: a coaching tool should run; false: none should.")
    settles: Literal["helped", "failed", "nothing"] | None = Field(
        None, description="How the previous suggestion should be settled by this message.")
    plan: Literal["advances"] | None = Field(None, description="The plan's current step should move on.")
    act: Act | None = Field(None, description="How the message should be read.")


class ScriptedTurn(BaseModel):
    """One thing the person says, and what they need back."""

    say: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="What the person says.")
    expect: Expect = Field(default_factory=Expect)


class Conversation(BaseModel):
    """One person's scripted sessions."""

    id: str = Field(description="Lower-case letters, digits and dashes; names the person too.")
    about: str = Field("", description="What the conversation checks, in a sentence.")
    literal: bool = Field(False, description="The person asked for literal language.")
    profile: dict[str, Any] | None = Field(None, description="Profile fields stored before the first session.")
    sessions: list[list[ScriptedTurn]] = Field(min_length=1, description="Sessions, each a list of turns.")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("use 1-48 lower-case letters, digits and dashes")
        return value

    @field_validator("sessions")
    @classmethod
    def _no_empty_session(cls, value: list[list[ScriptedTurn]]) -> list[list[ScriptedTurn]]:
        if any(not turns for turns in value):
            raise ValueError("every session needs at least one turn")
        return value

    @property
    def user_id(self) -> str:
        """The simulated person's id."""
        return f"eval-{self.id}"


class ConversationFile(BaseModel):
    """A conversation dataset."""

    description: str = ""
    conversations: list[Conversation] = Field(min_length=1)

    @field_validator("conversations")
    @classmethod
    def _unique_ids(cls, value: list[Conversation]) -> list[Conversation]:
        seen: set[str] = set()
        for conversation in value:
            if conversation.id in seen:
                raise ValueError(f"conversation id {conversation.id!r} appears twice")
            seen.add(conversation.id)
        return value


def load_conversations(path: Path) -> ConversationFile:
    """Read and validate a dataset; errors say which file, where, and what is wrong."""
    return load_json_model(path, ConversationFile, field="conversations")


def tried_in(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The session's interventions with the outcome the next turns settled for them."""
    tried: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        if not ((decision := decision_of(turn)) and decision.intervention):
            continue
        tried.append({"tool": decision.tool, "outcome": settled_after(turns, i)})
    return tried


async def play(conversation: Conversation, session_for: Any, registry: MemoryRegistry, *,
               seed: str = "1") -> list[dict[str, Any]]:
    """Play a conversation through the graph; ``session_for(user, seed)`` opens a session.
    Returns the turn records and session ends, in order."""
    user = validate_user_id(conversation.user_id)
    if conversation.profile and (profiles := registry.get(ProfileMemory)) is not None:
        await profiles.update(user, conversation.profile)
    records: list[dict[str, Any]] = []
    for number, turns in enumerate(conversation.sessions, start=1):
        session: CompanionSession = session_for(user, f"{seed}:{conversation.id}:{number}")
        await session.open()
        played: list[dict[str, Any]] = []
        for index, scripted in enumerate(turns, start=1):
            result = await session.send(scripted.say)
            played.append({**result.model_dump(mode="json", exclude={"thread_id", "timings"}),
                           "kind": "turn", "session": number, "index": index, "say": scripted.say,
                           "expect": scripted.expect.model_dump(mode="json"), "literal": conversation.literal})
        end = await session.end()
        records.extend(played)
        records.append({"kind": "end", "session": number, "reflection": end.reflection, "tried": tried_in(played)})
    return records
