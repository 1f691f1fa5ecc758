"""LangChain's standard embeddings suites (langchain-tests) on the offline MiniLM embedder and
on the cached one the memory layer uses (its async faces through a real RedisVL cache on the
embedded server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from redisvl.extensions.cache.embeddings import EmbeddingsCache

from memories.connection import connect
from memories.embeddings import CachedEmbeddings, LocalMiniLMEmbeddings

# Offline means offline: a connection anywhere but this machine fails the test.
pytestmark = pytest.mark.allow_hosts(["127.0.0.1", "::1", "localhost"])


class TestMiniLMUnit(EmbeddingsUnitTests):
    """The offline embedder's unit suite."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return LocalMiniLMEmbeddings


class TestMiniLMIntegration(EmbeddingsIntegrationTests):
    """The offline embedder's integration suite: real vectors from the int8 ONNX model."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return LocalMiniLMEmbeddings

    @pytest.fixture
    def model(self, minilm: LocalMiniLMEmbeddings) -> Embeddings:
        return minilm  # the session's loaded model (loading takes ~0.5 s)


class TestCachedUnit(EmbeddingsUnitTests):
    """The cached embedder's unit suite (no cache: it embeds straight through)."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return CachedEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        inner = LocalMiniLMEmbeddings()
        return {"inner": inner, "model_id": inner.model_id, "dims": inner.dims, "cache": None}


class TestCachedIntegration(EmbeddingsIntegrationTests):
    """The cached embedder's integration suite with its RedisVL cache on the embedded server."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return CachedEmbeddings

    @pytest.fixture
    async def model(self, redis_url: str, minilm: LocalMiniLMEmbeddings) -> AsyncIterator[Embeddings]:
        client = connect(redis_url)
        cache = EmbeddingsCache(name=f"t{uuid.uuid4().hex[:12]}:embedcache", ttl=60, async_redis_client=client)
        yield CachedEmbeddings(minilm, model_id=minilm.model_id, dims=minilm.dims, cache=cache)
        await cache.aclear()
        await client.aclose()

    async def test_async_vectors_come_back_from_the_cache(self, model: CachedEmbeddings) -> None:
        """Not one of the suite's: the async faces really go through Redis."""
        first = await model.aembed_documents(["foo", "bar"])
        model._recent.clear()  # skip the in-process layer: the next read has to come from Redis
        assert await model.aembed_documents(["foo", "bar"]) == first
        assert (model.misses, model.hits) == (2, 2)
