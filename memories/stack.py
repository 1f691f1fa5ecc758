"""Opening the memory layer: connect, check the server, build the embedder and elements."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from langchain_core.embeddings import Embeddings

from memories.base import MemoryBackend
from memories.config import MemorySettings
from memories.connection import check_modules, connect
from memories.embedding_cache import CompactEmbeddingsCache
from memories.embeddings import CachedEmbeddings, EmbeddingProvider, build_base_embeddings
from memories.registry import MemoryRegistry

log = logging.getLogger(__name__)


@dataclass
class MemoryStack:
    """A connected memory layer: the client, the cached embedder and the enabled elements."""

    client: aioredis.Redis
    embeddings: CachedEmbeddings
    registry: MemoryRegistry

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        await self.client.aclose()


async def open_memory(
    redis_url: str,
    settings: MemorySettings | None = None,
    *,
    embedding_provider: EmbeddingProvider = "local",
    google_api_key: str | None = None,
    google_embedding_model: str = "gemini-embedding-001",
    google_embedding_dims: int = 768,
    connect_timeout_s: float = 1.0,
    socket_timeout_s: float = 2.0,
    max_connections: int = 64,
    pool_timeout_s: float = 10.0,
    create_indexes: bool = True,
    base_embeddings: tuple[Embeddings, str, int] | None = None,
) -> MemoryStack:
    """Connect to ``redis_url``, verify Search + JSON, and build the enabled elements."""
    settings = settings or MemorySettings()
    client = connect(redis_url, connect_timeout_s=connect_timeout_s, socket_timeout_s=socket_timeout_s,
                     max_connections=max_connections, pool_timeout_s=pool_timeout_s)
    try:
        await check_modules(client, redis_url)
        # base_embeddings lets a long-lived process (tests, notebooks) reuse a loaded model.
        inner, model_id, dims = base_embeddings or build_base_embeddings(
            embedding_provider, google_api_key=google_api_key,
            google_model=google_embedding_model, google_dims=google_embedding_dims,
        )
        cache = CompactEmbeddingsCache(name=f"{settings.namespace}:embedcache", ttl=settings.embedding_cache_ttl_s,
                                       async_redis_client=client)
        embeddings = CachedEmbeddings(inner, model_id=model_id, dims=dims, cache=cache)
        registry = MemoryRegistry(MemoryBackend(client=client, embeddings=embeddings, settings=settings))
        if create_indexes:
            await registry.setup()
    except BaseException:
        await client.aclose()
        raise
    log.info("memory layer ready: %s elements, embeddings %s", len(registry.elements), embeddings.tag)
    return MemoryStack(client=client, embeddings=embeddings, registry=registry)
