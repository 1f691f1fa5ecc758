"""Shared base of elements that keep one JSON document per user (profile, current state).

Partial updates are validated first, then applied server-side with JSON.MERGE
(RFC 7396) in one MULTI transaction, so two processes updating different fields
of the same person's document never overwrite each other.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from memories.base import MemoryElement
from memories.connection import unavailable_as_typed_error
from memories.records import MemorySection, now
from memories.storage import UserScopedIndex
from memories.tracing import traced
from memories.validation import parse, user_tag

D = TypeVar("D", bound=BaseModel)
U = TypeVar("U", bound=BaseModel)


class DocumentMemory(MemoryElement[D], Generic[D, U]):
    """An element holding a single document of type ``D`` per user, updated by patches ``U``."""

    document: ClassVar[type[BaseModel]]
    patch: ClassVar[type[BaseModel]]
    indexed_fields: ClassVar[list[dict[str, Any]]] = [{"name": "last_updated", "type": "numeric"}]

    def _build_index(self) -> UserScopedIndex:
        return UserScopedIndex(
            self.backend.client,
            name=self.backend.index_name(self.name, with_vectors=False),
            storage="json",
            fields=self.indexed_fields,
        )

    def _key(self, user_id: str) -> str:
        return self.index.key(user_id)  # {prefix}:{<user_tag>}

    def _stored(self, user_id: str, doc: BaseModel) -> dict[str, Any]:
        return {**doc.model_dump(mode="json"), "user_id": user_tag(user_id)}

    def _from_stored(self, raw: dict[str, Any]) -> D:
        raw = {k: v for k, v in raw.items() if k != "user_id"}
        return self.document.model_validate(raw)  # type: ignore[return-value]

    @traced("document.get")
    @unavailable_as_typed_error
    async def get(self, user_id: str) -> D | None:
        """The user's document, or ``None`` if nothing was stored yet."""
        raw = await self.backend.client.json().get(self._key(user_id))
        return self._from_stored(raw) if raw else None

    async def get_or_default(self, user_id: str) -> D:
        """The user's document, or a fresh default one (not stored)."""
        return await self.get(user_id) or self.document()  # type: ignore[return-value]

    @traced("document.save")
    @unavailable_as_typed_error
    async def save(self, user_id: str, record: D | dict[str, Any]) -> str:
        """Replace the user's whole document."""
        key = self._key(user_id)
        doc = parse(self.document, record).model_copy(update={"last_updated": now()})
        await self.backend.client.json().set(key, "$", self._stored(user_id, doc))
        return key

    @traced("document.update")
    @unavailable_as_typed_error
    async def update(self, user_id: str, changes: U | dict[str, Any]) -> D:
        """Apply a partial update (only the fields given) and return the new document."""
        key = self._key(user_id)
        patch_model = parse(self.patch, changes)
        patch = patch_model.model_dump(mode="json", exclude_unset=True)
        current = await self.get_or_default(user_id)
        # Validate the merged result before anything is written.
        merged = parse(self.document, _deep_merge(current.model_dump(mode="json"), patch))
        patch["last_updated"] = now()
        default = self._stored(user_id, self.document())
        async with self.backend.client.pipeline(transaction=True) as pipe:
            pipe.json().set(key, "$", default, nx=True)
            # In a JSON merge patch null deletes a member; the model default (None) then
            # comes back on read, which is what clearing a field means.
            pipe.json().merge(key, "$", patch)
            pipe.json().get(key)
            *_, raw = await pipe.execute()
        return self._from_stored(raw) if raw else merged

    @traced("document.load")
    async def load(self, user_id: str, inputs: Any = None) -> MemorySection:
        """The user's document as a prompt section (empty when none is stored)."""
        doc = await self.get(user_id)
        if doc is None:
            return MemorySection(element=self.name, prompt="", data=None)
        return MemorySection(element=self.name, prompt=self.render(doc), data=doc, used_ids=[self._key(user_id)])

    @abc.abstractmethod
    def render(self, doc: D) -> str:
        """The prompt-ready text of a document."""


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

