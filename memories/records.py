"""Field types and envelopes shared by every memory element's records.

Limits (also in docs/memory.md): free text 1-2,000 characters after stripping,
short text (names, moods, tags) 1-64, at most 16 tags and 32 list items per field.
Longer input is refused with :class:`memories.errors.InvalidInput`, never truncated,
so a user's words are either stored whole or not at all.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_TEXT_CHARS = 2000
MAX_SHORT_CHARS = 64
MAX_TAGS = 16
MAX_LIST_ITEMS = 32


def _dedupe_lower(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        if not tag.isprintable():
            raise ValueError(f"tag {tag!r} has non-printable characters")
        tag = tag.lower()
        if tag not in out:
            out.append(tag)
    return out


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SHORT_CHARS)]
Tags = Annotated[list[ShortText], Field(max_length=MAX_TAGS), AfterValidator(_dedupe_lower)]
TextList = Annotated[list[Text], Field(max_length=MAX_LIST_ITEMS)]
Timestamp = Annotated[float, Field(ge=0, allow_inf_nan=False, description="Unix time in seconds.")]


def now() -> float:
    """Current Unix time in seconds, to the millisecond: RedisJSON prints doubles with
    about 15 significant digits, and a timestamp must read back exactly as written."""
    return round(time.time(), 3)


class Record(BaseModel):
    """Base of stored records: strict about unknown fields and non-finite numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_enum_values=False)


class TurnInputs(Record):
    """What a turn gives the memory layer to load context for."""

    message: str = Field("", max_length=MAX_TEXT_CHARS, description="The user's latest words.")
    task: str | None = Field(None, max_length=MAX_TEXT_CHARS, description="The task being worked on, if any.")
    k: int | None = Field(None, ge=1, le=50, description="Override of how many examples to retrieve.")

    @property
    def situation(self) -> str:
        """The text few-shot retrieval searches by: the message, plus the task."""
        parts = [p.strip() for p in (self.message, self.task or "") if p and p.strip()]
        return " | task: ".join(parts)


class MemorySection(BaseModel):
    """What one memory element contributes to a turn."""

    element: str = Field(description="Name of the element that produced this section.")
    prompt: str = Field(description="Prompt-ready text; empty when the element has nothing to say.")
    data: Any = Field(None, description="The same content as structured data (records or models).")
    used_ids: list[str] = Field(default_factory=list, description="Ids of the records this section drew on.")
