"""The embedding cache on the embedded server: vectors as float32 bytes, TTL, RedisVL's old entries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from redisvl.extensions.cache.embeddings import EmbeddingsCache

from memories.connection import connect
from memories.embedding_cache import CompactEmbeddingsCache
from memories.embeddings import CachedEmbeddings, LocalMiniLMEmbeddings, _digest
from tests.test_embeddings import CountingEmbeddings

SAID = "I can't face the inbox this morning"




@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    opened = connect(redis_url)
    yield opened
    await opened.aclose()


def cache_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}:embedcache"


def cached(minilm: LocalMiniLMEmbeddings, client: aioredis.Redis, *, name: str | None = None,
           ttl: int = 600) -> tuple[CachedEmbeddings, CountingEmbeddings]:
    counting = CountingEmbeddings(minilm)
    cache = CompactEmbeddingsCache(name=name or cache_name(), ttl=ttl, async_redis_client=client)
    return CachedEmbeddings(counting, model_id=minilm.model_id, dims=minilm.dims, cache=cache), counting


def key_of(embeddings: CachedEmbeddings, text: str) -> str:
    assert isinstance(embeddings.cache, CompactEmbeddingsCache)
    return embeddings.cache.key(_digest(text), embeddings.tag)


async def test_a_vector_round_trips_as_float32_bytes_much_smaller_than_json(
        client: aioredis.Redis, minilm: LocalMiniLMEmbeddings) -> None:
    embeddings, _ = cached(minilm, client)
    computed = await embeddings.aembed_query(SAID)
    key = key_of(embeddings, SAID)
    assert await client.type(key) == b"string"
    stored = await client.get(key)
    assert stored is not None and len(stored) == 4 * minilm.dims  # the vector's bytes: no JSON, no text
    assert np.frombuffer(stored, dtype="<f4").tolist() == computed
    np.testing.assert_allclose(computed, minilm.embed_query(SAID), atol=1e-7)

    embeddings._recent.clear()  # the next read has to come from Redis
    assert await embeddings.aembed_query(SAID) == computed
    assert (embeddings.misses, embeddings.hits) == (1, 1)

    # RedisVL's own cache, same vector: the compact entry takes a fraction of its memory.
    json_cache = EmbeddingsCache(name=cache_name(), ttl=600, async_redis_client=client)
    json_key = await json_cache.aset(content=_digest(SAID), model_name=embeddings.tag, embedding=computed)
    compact_bytes, json_bytes = await client.memory_usage(key), await client.memory_usage(json_key)
    assert compact_bytes * 4 < json_bytes, (compact_bytes, json_bytes)
    assert compact_bytes < 1800


async def test_entries_expire_after_the_ttl_and_a_hit_refreshes_it(
        client: aioredis.Redis, minilm: LocalMiniLMEmbeddings) -> None:
    embeddings, _ = cached(minilm, client)
    await embeddings.aembed_documents(["first thing", "second thing"])
    key = key_of(embeddings, "first thing")
    assert 590 <= await client.ttl(key) <= 600
    await client.expire(key, 5)
    embeddings._recent.clear()
    await embeddings.aembed_query("first thing")  # a hit
    assert (embeddings.hits, embeddings.misses) == (1, 2)
    assert 590 <= await client.ttl(key) <= 600

    short, counting = cached(minilm, client, ttl=1)
    await short.aembed_query("gone soon")
    assert await client.exists(key_of(short, "gone soon"))
    await asyncio.sleep(1.3)
    assert not await client.exists(key_of(short, "gone soon"))
    short._recent.clear()
    await short.aembed_query("gone soon")
    assert counting.embedded == ["gone soon", "gone soon"]


async def test_entries_redisvl_wrote_as_json_are_read_and_rewritten_compactly(
        client: aioredis.Redis, minilm: LocalMiniLMEmbeddings) -> None:
    name = cache_name()
    embeddings, counting = cached(minilm, client, name=name)
    old = EmbeddingsCache(name=name, ttl=600, async_redis_client=client)
    vector = minilm.embed_query("the old cache had this one")
    await old.aset(content=_digest("the old cache had this one"), model_name=embeddings.tag, embedding=vector)
    key = key_of(embeddings, "the old cache had this one")
    assert await client.type(key) == b"hash"  # JSON in a HASH, as RedisVL writes it

    alone = minilm.embed_query("read on its own")
    await old.aset(content=_digest("read on its own"), model_name=embeddings.tag, embedding=alone)

    got = await embeddings.aembed_documents(["the old cache had this one", "and a new one"])
    np.testing.assert_allclose(await embeddings.aembed_query("read on its own"), alone, atol=1e-7)
    assert counting.embedded == ["and a new one"]  # the old entries were hits
    np.testing.assert_allclose(got[0], vector, atol=1e-7)
    for text in ("the old cache had this one", "read on its own"):
        assert await client.type(key_of(embeddings, text)) == b"string"  # rewritten compactly
        assert 590 <= await client.ttl(key_of(embeddings, text)) <= 600
    embeddings._recent.clear()
    assert await embeddings.aembed_documents(["the old cache had this one", "and a new one"]) == got


async def test_an_unreadable_entry_is_a_miss_not_an_error(
        client: aioredis.Redis, minilm: LocalMiniLMEmbeddings) -> None:
    embeddings, counting = cached(minilm, client)
    texts = ["bad json", "odd bytes", "short vector"]
    await client.hset(key_of(embeddings, "bad json"), mapping={
        "embedding": "[0.1, 0.2", "model_name": "x", "content": "y", "entry_id": "z"})
    await client.set(key_of(embeddings, "odd bytes"), b"\x00" * 7)
    await client.set(key_of(embeddings, "short vector"), np.zeros(3, dtype="<f4").tobytes())
    got = await embeddings.aembed_documents(texts)
    assert counting.embedded == texts
    np.testing.assert_allclose(got, minilm.embed_documents(texts), atol=1e-7)
    for text in texts:  # replaced by good entries
        stored = await client.get(key_of(embeddings, text))
        assert stored is not None and len(stored) == 4 * minilm.dims
