"""ReflectionMemory: short insights about what helps a person, merged when they repeat."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from memories.base import MemoryElement
from memories.connection import unavailable_as_typed_error
from memories.records import MemorySection, Record, Tags, Text, Timestamp, TurnInputs, now
from memories.storage import UserScopedIndex, join_tags, split_tags, tag_field
from memories.tracing import traced
from memories.validation import parse, user_tag, validate_user_id

RETURN_FIELDS = ["insight", "tags", "support", "created_at", "last_seen", "vector_distance"]


class NewReflection(Record):
    """An insight to remember."""

    insight: Text = Field(description="One short insight, e.g. 'Body doubling helps with dishes'.")
    tags: Tags = Field(default_factory=list, description="Topic tags.")


class Reflection(NewReflection):
    """A stored insight; ``support`` counts how often it was (re)discovered."""

    id: str
    support: int = Field(1, ge=1, description="Times this insight was reached (merges included).")
    created_at: Timestamp
    last_seen: Timestamp


class SavedReflection(BaseModel):
    """The result of saving an insight: the stored reflection and whether it merged."""

    reflection: Reflection
    merged: bool = Field(description="True when it was folded into a near-duplicate.")
    similarity: float | None = Field(None, description="Similarity to the insight it merged into.")


class ReflectionMemory(MemoryElement[NewReflection]):
    """Insights per user, retrievable by recency and by relevance, deduplicated by meaning."""

    name = "reflections"
    memory_variables = ["reflections"]

    def _build_index(self) -> UserScopedIndex:
        return self._vector_index([tag_field("tags"),
                                   {"name": "last_seen", "type": "numeric", "attrs": {"sortable": True}}])

    @property
    def ttl_s(self) -> int:
        return int(self.settings.reflection_ttl_days * 86400)

    async def save(self, user_id: str, record: NewReflection | dict[str, Any]) -> str:
        """Store (or merge) an insight; returns the id it lives under."""
        return (await self.remember(user_id, record)).reflection.id

    @traced("reflections.remember")
    @unavailable_as_typed_error
    async def remember(self, user_id: str, record: NewReflection | dict[str, Any]) -> SavedReflection:
        """Store an insight, or merge it into a near-duplicate (``reflection_merge_threshold``)."""
        validate_user_id(user_id)
        item = parse(NewReflection, record)
        vector = await self.backend.embeddings.aembed_query(item.insight)
        nearest = await self.index.nearest(user_id, vector, k=1, return_fields=RETURN_FIELDS)
        stamp = now()
        if nearest:
            similarity = 1.0 - float(nearest[0]["vector_distance"])
            if similarity >= self.settings.reflection_merge_threshold:
                old = self._from_hash(nearest[0])
                merged = old.model_copy(update={
                    "insight": item.insight,  # the newer wording reflects the latest understanding
                    "tags": list(dict.fromkeys([*old.tags, *item.tags]))[:16],
                    "support": old.support + 1,
                    "last_seen": stamp,
                })
                await self._write(user_id, merged, vector)
                return SavedReflection(reflection=merged, merged=True, similarity=similarity)
        fresh = Reflection(**item.model_dump(), id=uuid.uuid4().hex, created_at=stamp, last_seen=stamp)
        await self._write(user_id, fresh, vector)
        return SavedReflection(reflection=fresh, merged=False)

    async def _write(self, user_id: str, item: Reflection, vector: list[float]) -> None:
        doc = {
            "user_id": user_tag(user_id), "insight": item.insight, "tags": join_tags(item.tags),
            "support": item.support, "created_at": item.created_at, "last_seen": item.last_seen,
            "embedding": self.index.vector_bytes(vector),
        }
        await self.index.index.load([doc], keys=[self.index.key(user_id, item.id)], ttl=self.ttl_s)

    @staticmethod
    def _from_hash(raw: dict[str, Any]) -> Reflection:
        return Reflection(
            id=UserScopedIndex.record_id(raw["id"]), insight=raw["insight"], tags=split_tags(raw.get("tags")),
            support=int(raw["support"]),
            created_at=float(raw["created_at"]), last_seen=float(raw["last_seen"]),
        )

    @traced("reflections.recent")
    async def recent(self, user_id: str, limit: int = 5) -> list[Reflection]:
        """The user's most recently seen insights."""
        rows = await self.index.find(user_id, return_fields=RETURN_FIELDS, sort_by="last_seen", limit=limit)
        return [self._from_hash(r) for r in rows]

    @traced("reflections.relevant")
    async def relevant(self, user_id: str, text: str, limit: int = 3) -> list[tuple[Reflection, float]]:
        """The user's insights closest in meaning to ``text``, with their similarity."""
        query = parse(TurnInputs, {"message": text}).situation
        if not query:
            return []
        vector = await self.backend.embeddings.aembed_query(query)
        rows = await self.index.nearest(user_id, vector, k=limit, return_fields=RETURN_FIELDS)
        return [(self._from_hash(r), 1.0 - float(r["vector_distance"])) for r in rows]

    @traced("reflections.load")
    async def load(self, user_id: str, inputs: TurnInputs | dict[str, Any] | None = None) -> MemorySection:
        """Relevant insights for the turn's situation, topped up with the most recent ones."""
        turn = self._inputs(inputs)
        chosen: dict[str, Reflection] = {}
        if turn.situation:
            for reflection, similarity in await self.relevant(user_id, turn.situation):
                if similarity >= self.settings.ranking.min_similarity:
                    chosen[reflection.id] = reflection
        for reflection in await self.recent(user_id, limit=3):
            chosen.setdefault(reflection.id, reflection)
        items = list(chosen.values())[:5]
        prompt = "\n".join(f"- {r.insight}" for r in items)
        return MemorySection(element=self.name, prompt=prompt, data=items, used_ids=[r.id for r in items])
