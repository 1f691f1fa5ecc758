"""The contract every memory element implements, and what they share.

Modelled on LangChain's classic ``BaseMemory`` (memory variables, load for a
turn's inputs, save a turn's context, clear), async-first, plus the two
operations a person's data needs: export it, and forget it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import redis.asyncio as aioredis

from memories.config import MemorySettings
from memories.embeddings import CachedEmbeddings
from memories.keys import person_key
from memories.records import MemorySection, TurnInputs
from memories.storage import UserScopedIndex
from memories.validation import parse, validate_user_id

R = TypeVar("R")


@dataclass(frozen=True)
class MemoryBackend:
    """What every element is built from: one Redis client, one embedder, the settings."""

    client: aioredis.Redis
    embeddings: CachedEmbeddings
    settings: MemorySettings

    @property
    def vector_tag(self) -> str:
        """Embedding model, dimension and storage type, e.g. ``minilm-l6-int8-384-f16``:
        vectors of different models or encodings never share an index."""
        return f"{self.embeddings.tag}-{self.settings.vector_datatype.replace('float', 'f')}"

    def index_name(self, element: str, *, with_vectors: bool) -> str:
        """Index (and key prefix) name; vector indexes carry :attr:`vector_tag`."""
        base = f"{self.settings.namespace}:{element}"
        return f"{base}:{self.vector_tag}" if with_vectors else base

    def key(self, *parts: str) -> str:
        """A namespaced key outside any index, about no one in particular."""
        return ":".join((self.settings.namespace, *parts))

    def person_key(self, *parts: str, user_id: str) -> str:
        """A namespaced key of one person outside any index (counters, summaries):
        ``{ns}:{parts}:{<user_tag>}``, in the person's cluster slot (``memories.keys``)."""
        return person_key(self.settings.namespace, *parts, user_id=user_id)


class MemoryElement(abc.ABC, Generic[R]):
    """One pluggable memory element (profile, interventions, ...) on one RedisVL index."""

    #: Registry name of the element.
    name: ClassVar[str]
    #: The variables :meth:`load` fills, as in LangChain's ``BaseMemory.memory_variables``.
    memory_variables: ClassVar[list[str]]

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.index = self._build_index()

    @abc.abstractmethod
    def _build_index(self) -> UserScopedIndex:
        """The element's index definition."""

    def _vector_index(self, fields: list[dict[str, Any]]) -> UserScopedIndex:
        """A HASH index with an ``embedding`` field for the configured embedder."""
        return UserScopedIndex(
            self.backend.client,
            name=self.backend.index_name(self.name, with_vectors=True),
            storage="hash",
            fields=fields,
            vector_dims=self.backend.embeddings.dims,
            vector_datatype=self.settings.vector_datatype,
        )

    async def setup(self) -> None:
        """Create the element's index if needed (idempotent)."""
        await self.index.create()

    @abc.abstractmethod
    async def load(self, user_id: str, inputs: TurnInputs | dict[str, Any] | None = None) -> MemorySection:
        """What a turn needs from this element for ``user_id``: prompt text plus structured data."""

    @abc.abstractmethod
    async def save(self, user_id: str, record: R | dict[str, Any]) -> str:
        """Store one record of ``user_id``; returns its id. Invalid input writes nothing."""

    async def forget(self, user_id: str) -> int:
        """Delete everything this element holds about ``user_id``; returns the records deleted."""
        return await self.index.forget(validate_user_id(user_id))

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        """Everything this element holds about ``user_id``, as plain data."""
        return await self.index.export(validate_user_id(user_id))

    async def aload_memory_variables(self, user_id: str, inputs: dict[str, Any] | None = None) -> dict[str, str]:
        """LangChain-style face of :meth:`load`: ``{memory_variable: prompt}``."""
        section = await self.load(user_id, inputs)
        return {self.memory_variables[0]: section.prompt}

    @staticmethod
    def _inputs(inputs: TurnInputs | dict[str, Any] | None) -> TurnInputs:
        return parse(TurnInputs, inputs or {})
