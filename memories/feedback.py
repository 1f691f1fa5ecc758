"""FeedbackMemory: the person's ratings of replies (episodic) and what they add up to (semantic)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from pydantic import Field

from memories.base import MemoryElement
from memories.connection import unavailable_as_typed_error
from memories.errors import InvalidInput
from memories.records import MemorySection, Record, ShortText, Tags, Text, Timestamp, TurnInputs, now
from memories.storage import UserScopedIndex, join_tags, split_tags, tag_field
from memories.tracing import traced
from memories.validation import parse, user_tag, validate_user_id

RETURN_FIELDS = ["rating", "tags", "comment", "interaction_id", "created_at"]
SUMMARY_WINDOW = 200  # entries the deterministic summary looks at


class NewFeedback(Record):
    """One rating of a reply."""

    rating: int = Field(ge=1, le=5, description="1 (did not help) to 5 (helped a lot).")
    tags: Tags = Field(default_factory=list, description="E.g. 'too long', 'kind', 'breathing'.")
    comment: Text | None = Field(None, description="The person's words, if any.")
    interaction_id: ShortText | None = Field(None, description="The reply or intervention rated.")
    created_at: Timestamp | None = Field(None, description="Defaults to now.")


class Feedback(NewFeedback):
    """A stored rating."""

    id: str
    created_at: Timestamp


class FeedbackSummary(Record):
    """What the person's feedback adds up to."""

    positives: list[str] = Field(default_factory=list, description="What they liked.")
    negatives: list[str] = Field(default_factory=list, description="What did not work for them.")
    suggestions: list[str] = Field(default_factory=list, description="What to do differently.")
    average_rating: float | None = Field(None, ge=1, le=5, description="Mean rating of recent entries.")
    entries: int = Field(0, ge=0, description="Entries the summary is based on.")
    last_updated: Timestamp = 0.0


class FeedbackMemory(MemoryElement[NewFeedback]):
    """Ratings with comments (searchable by meaning) and a per-user summary."""

    name = "feedback"
    memory_variables = ["feedback_summary"]

    def _build_index(self) -> UserScopedIndex:
        return self._vector_index([tag_field("tags"), {"name": "rating", "type": "numeric"},
                                   {"name": "created_at", "type": "numeric", "attrs": {"sortable": True}}])

    def _summary_key(self, user_id: str) -> str:
        return self.backend.person_key("feedback_summary", user_id=user_id)

    @traced("feedback.save")
    @unavailable_as_typed_error
    async def save(self, user_id: str, record: NewFeedback | dict[str, Any], *, record_id: str | None = None) -> str:
        """Store one rating; the comment (if any) is embedded so it can be searched by meaning.
        Saving again under the same ``record_id`` overwrites (a replayed write lands once)."""
        validate_user_id(user_id)
        item = parse(NewFeedback, record)
        if record_id is not None and not (record_id.isalnum() and len(record_id) <= 64):
            raise InvalidInput("an alphanumeric id of at most 64 characters", field="record_id")
        stored = Feedback(**item.model_dump(exclude={"created_at"}), id=record_id or uuid.uuid4().hex,
                          created_at=item.created_at if item.created_at is not None else now())
        doc: dict[str, Any] = {
            "user_id": user_tag(user_id), "rating": stored.rating, "tags": join_tags(stored.tags),
            "comment": stored.comment or "", "interaction_id": stored.interaction_id or "",
            "created_at": stored.created_at,
        }
        if stored.comment:  # entries without a comment simply stay out of the vector index
            doc["embedding"] = self.index.vector_bytes(await self.backend.embeddings.aembed_query(stored.comment))
        ttl = int(self.settings.feedback_ttl_days * 86400) if self.settings.feedback_ttl_days else None
        await self.index.index.load([doc], keys=[self.index.key(user_id, stored.id)], ttl=ttl)
        return stored.id

    @staticmethod
    def _from_hash(raw: dict[str, Any]) -> Feedback:
        return Feedback(
            id=UserScopedIndex.record_id(raw["id"]), rating=int(raw["rating"]), tags=split_tags(raw.get("tags")),
            comment=raw.get("comment") or None, interaction_id=raw.get("interaction_id") or None,
            created_at=float(raw["created_at"]),
        )

    @traced("feedback.recent")
    async def recent(self, user_id: str, limit: int = 10) -> list[Feedback]:
        """The user's newest ratings."""
        rows = await self.index.find(user_id, return_fields=RETURN_FIELDS, sort_by="created_at", limit=limit)
        return [self._from_hash(r) for r in rows]

    @traced("feedback.similar_comments")
    async def similar_comments(self, user_id: str, text: str, limit: int = 3) -> list[tuple[Feedback, float]]:
        """Comments closest in meaning to ``text``."""
        query = parse(TurnInputs, {"message": text}).situation
        if not query:
            return []
        vector = await self.backend.embeddings.aembed_query(query)
        rows = await self.index.nearest(user_id, vector, k=limit, return_fields=[*RETURN_FIELDS, "vector_distance"])
        return [(self._from_hash(r), 1.0 - float(r["vector_distance"])) for r in rows]

    @traced("feedback.summary")
    @unavailable_as_typed_error
    async def summary(self, user_id: str) -> FeedbackSummary | None:
        """The stored summary, if any."""
        raw = await self.backend.client.json().get(self._summary_key(user_id))
        return FeedbackSummary.model_validate(raw) if raw else None

    @traced("feedback.set_summary")
    @unavailable_as_typed_error
    async def set_summary(self, user_id: str, summary: FeedbackSummary | dict[str, Any]) -> FeedbackSummary:
        """Store a summary written elsewhere (e.g. by the reflect step's chat model)."""
        item = parse(FeedbackSummary, summary).model_copy(update={"last_updated": now()})
        await self.backend.client.json().set(self._summary_key(user_id), "$", item.model_dump(mode="json"))
        return item

    @traced("feedback.refresh_summary")
    async def refresh_summary(self, user_id: str) -> FeedbackSummary:
        """Rebuild the summary from recent entries without a model: tags and comments of
        high ratings become positives, of low ratings negatives; low-rated comments
        become suggestions to avoid."""
        entries = await self.recent(user_id, limit=SUMMARY_WINDOW)
        good = Counter(t for e in entries if e.rating >= 4 for t in e.tags)
        bad = Counter(t for e in entries if e.rating <= 2 for t in e.tags)
        suggestions = [f"avoid: {e.comment}" for e in entries if e.rating <= 2 and e.comment][:3]
        average = sum(e.rating for e in entries) / len(entries) if entries else None
        summary = FeedbackSummary(
            positives=[t for t, _ in good.most_common(5)], negatives=[t for t, _ in bad.most_common(5)],
            suggestions=suggestions, average_rating=average, entries=len(entries),
        )
        return await self.set_summary(user_id, summary)

    async def forget(self, user_id: str) -> int:
        """Delete every rating and the summary."""
        deleted = await super().forget(user_id)
        return deleted + int(await self.backend.client.unlink(self._summary_key(user_id)))

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        """Every rating plus the summary."""
        entries = await super().export(user_id)
        summary = await self.summary(user_id)
        return entries + ([{"key": self._summary_key(user_id), **summary.model_dump(mode="json")}] if summary else [])

    @traced("feedback.load")
    async def load(self, user_id: str, inputs: TurnInputs | dict[str, Any] | None = None) -> MemorySection:
        """The feedback summary as prompt text."""
        summary = await self.summary(user_id)
        if summary is None or summary.entries == 0:
            return MemorySection(element=self.name, prompt="", data=summary)
        parts = []
        if summary.positives:
            parts.append("They liked: " + ", ".join(summary.positives))
        if summary.negatives:
            parts.append("Did not work for them: " + ", ".join(summary.negatives))
        parts.extend(summary.suggestions)
        if summary.average_rating is not None:
            parts.append(f"Average rating {summary.average_rating:.1f}/5 over {summary.entries} ratings")
        return MemorySection(element=self.name, prompt="\n".join(parts), data=summary,
                             used_ids=[self._summary_key(user_id)])
