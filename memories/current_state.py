"""CurrentStateMemory: how the person is doing right now."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from memories.connection import unavailable_as_typed_error
from memories.documents import DocumentMemory
from memories.records import Record, Text, TextList, Timestamp, now
from memories.tracing import traced
from memories.validation import parse


class Mood(StrEnum):
    """The person's mood as last observed."""

    UNKNOWN = "unknown"
    CALM = "calm"
    HAPPY = "happy"
    FOCUSED = "focused"
    ANXIOUS = "anxious"
    OVERWHELMED = "overwhelmed"
    FRUSTRATED = "frustrated"
    TIRED = "tired"
    SAD = "sad"


class Energy(StrEnum):
    """The person's energy as last observed."""

    UNKNOWN = "unknown"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CurrentState(Record):
    """A snapshot of the person's state; wins and losses keep the most recent few."""

    mood: Mood = Field(Mood.UNKNOWN, description="Last observed mood.")
    energy: Energy = Field(Energy.UNKNOWN, description="Last observed energy.")
    focus_areas: TextList = Field(default_factory=list, description="What they are working on.")
    pain_points: TextList = Field(default_factory=list, description="What is hard right now.")
    recent_wins: TextList = Field(default_factory=list, description="Most recent micro-wins, newest last.")
    recent_losses: TextList = Field(default_factory=list, description="Recent setbacks, newest last.")
    last_updated: Timestamp = Field(0.0, description="When the state last changed.")


class CurrentStateUpdate(Record):
    """A partial update of :class:`CurrentState`; lists given here replace the stored ones."""

    mood: Mood | None = None
    energy: Energy | None = None
    focus_areas: TextList | None = None
    pain_points: TextList | None = None
    recent_wins: TextList | None = None
    recent_losses: TextList | None = None


class _Item(Record):
    text: Text


class CurrentStateMemory(DocumentMemory[CurrentState, CurrentStateUpdate]):
    """The person's current state, with bounded lists of recent wins and losses."""

    name = "current_state"
    memory_variables = ["current_state"]
    document = CurrentState
    patch = CurrentStateUpdate

    async def add_win(self, user_id: str, text: str) -> CurrentState:
        """Append a micro-win, keeping the ``max_list_items`` most recent."""
        return await self._append(user_id, "recent_wins", text)

    async def add_loss(self, user_id: str, text: str) -> CurrentState:
        """Append a setback, keeping the ``max_list_items`` most recent."""
        return await self._append(user_id, "recent_losses", text)

    @traced("current_state.append")
    @unavailable_as_typed_error
    async def _append(self, user_id: str, field: str, text: str) -> CurrentState:
        item = parse(_Item, {"text": text}).text
        key = self._key(user_id)
        keep = self.settings.max_list_items
        async with self.backend.client.pipeline(transaction=True) as pipe:
            pipe.json().set(key, "$", self._stored(user_id, CurrentState()), nx=True)
            pipe.json().arrappend(key, f"$.{field}", item)
            pipe.json().arrtrim(key, f"$.{field}", -keep, -1)
            pipe.json().set(key, "$.last_updated", now())
            pipe.json().get(key)
            *_, raw = await pipe.execute()
        return self._from_stored(raw)

    def render(self, doc: CurrentState) -> str:
        """Current state for the prompt."""
        lines = []
        if doc.mood is not Mood.UNKNOWN or doc.energy is not Energy.UNKNOWN:
            lines.append(f"Mood: {doc.mood.value}; energy: {doc.energy.value}")
        for label, items in (
            ("Working on", doc.focus_areas),
            ("Hard right now", doc.pain_points),
            ("Recent wins", doc.recent_wins[-3:]),
            ("Recent setbacks", doc.recent_losses[-2:]),
        ):
            if items:
                lines.append(f"{label}: " + "; ".join(items))
        return "\n".join(lines)
