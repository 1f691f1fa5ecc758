"""Statistics of the memory layer: how much each element holds and how well the embedding
cache works. ``memory_stats`` is a weave op, so with tracing on each call is logged to
Weave with the figures as its output; offline it only computes them (no network).

Counts only: no user id, no text. One person's own counts are ``person_counts``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from memories.connection import unavailable_as_typed_error
from memories.embeddings import CachedEmbeddings
from memories.registry import MemoryRegistry
from memories.tracing import traced
from memories.validation import validate_user_id


class IndexSize(BaseModel):
    """One memory element's index, over everyone."""

    element: str = Field(description="The memory element (profile, interventions, ...).")
    index: str = Field(description="The RediSearch index name.")
    documents: int = Field(description="Records indexed (all people).")
    index_mb: float = Field(description="Memory of the index structures, MB (FT.INFO total_index_memory_sz_mb).")
    vector_mb: float = Field(description="Memory of the vector index, MB (0 without vectors).")


class CacheStats(BaseModel):
    """The embedding cache of this process since it started."""

    hits: int = Field(description="Texts whose vector came from the cache (in-process or Redis).")
    misses: int = Field(description="Texts the embedder had to embed.")
    hit_rate: float | None = Field(description="hits / (hits + misses); None before any lookup.")


class MemoryStats(BaseModel):
    """What the memory layer holds, per element, and the embedding cache's hit rate."""

    indexes: list[IndexSize] = Field(description="One entry per enabled element.")
    cache: CacheStats


def cache_stats(embeddings: CachedEmbeddings) -> CacheStats:
    """The cache counters of ``embeddings`` (read in-process, no Redis)."""
    looked_up = embeddings.hits + embeddings.misses
    return CacheStats(hits=embeddings.hits, misses=embeddings.misses,
                      hit_rate=round(embeddings.hits / looked_up, 4) if looked_up else None)


@unavailable_as_typed_error
async def index_sizes(registry: MemoryRegistry) -> list[IndexSize]:
    """FT.INFO of every enabled element's index."""
    sizes = []
    for name, element in registry.elements.items():
        info = await element.index.index.info()
        sizes.append(IndexSize(element=name, index=element.index.name, documents=int(info.get("num_docs", 0)),
                               index_mb=round(float(info.get("total_index_memory_sz_mb", 0.0)), 4),
                               vector_mb=round(float(info.get("vector_index_sz_mb", 0.0)), 4)))
    return sizes


@traced("memory.stats")
async def memory_stats(registry: MemoryRegistry) -> MemoryStats:
    """Counts per element and the cache hit rate (logged to Weave when tracing is on)."""
    return MemoryStats(indexes=await index_sizes(registry), cache=cache_stats(registry.backend.embeddings))


async def person_counts(registry: MemoryRegistry, user_id: str) -> dict[str, int]:
    """How many records each element holds about one person."""
    user_id = validate_user_id(user_id)
    return {name: await element.index.count(user_id) for name, element in registry.elements.items()}
