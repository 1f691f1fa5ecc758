"""The embedding cache in Redis: one small binary string per (text, model), float32 bytes.

RedisVL's ``EmbeddingsCache`` stores each vector in a HASH as JSON text (~9 KB in Redis for
384 floats, with the content, the model name and a timestamp) and refreshes a hit's TTL
with one more round trip per hit. :class:`CompactEmbeddingsCache` has the same keys
(``{name}:{sha256(content:model)}``), TTL and async API, and stores the vector alone as
little-endian float32 bytes (1,536 bytes for 384 dims, ~1.6 KB in Redis). A string, not a
HASH: ``GETEX`` reads an entry and refreshes its TTL in one command and ``SET ... EX``
writes it in one, where a HASH needs two commands for each (a command in a redis-py
pipeline costs ~11 µs of client CPU and ~12-25 µs in all).

Entries RedisVL wrote (HASHes of JSON) are still read, and rewritten compactly when read;
an entry that cannot be read is a miss, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redisvl.extensions.cache.embeddings.schema import CacheEntry
from redisvl.redis.utils import convert_bytes, hashify

log = logging.getLogger(__name__)

FLOAT32 = np.dtype("<f4")
SCAN_PAGE = 500


def vector_blob(vector: Any) -> bytes:
    """A vector as the bytes an entry stores."""
    return np.asarray(vector, dtype=FLOAT32).tobytes()


class CompactEmbeddingsCache:
    """Cached vectors by content and model name, as float32 bytes expiring ``ttl`` seconds
    after their last use (see the module). Takes the arguments of RedisVL's
    ``EmbeddingsCache`` that the memory layer uses, and answers its ``amget``/``amset``."""

    def __init__(self, name: str = "embedcache", ttl: int | None = None, *,
                 async_redis_client: aioredis.Redis) -> None:
        self.name = name
        self.ttl = int(ttl) if ttl is not None else None
        self.client = async_redis_client

    def key(self, content: str, model_name: str) -> str:
        """The Redis key of an entry: the one RedisVL's ``EmbeddingsCache`` uses."""
        return f"{self.name}:{hashify(f'{content}:{model_name}')}"

    async def amget(self, contents: Iterable[str], model_name: str) -> list[dict[str, Any] | None]:
        """``{"embedding": [...]}`` for each content (None for a miss), in order, refreshing
        the TTL of every hit; one round trip (two if some entry is in RedisVL's form)."""
        keys = [self.key(c, model_name) for c in contents]
        if not keys:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                if self.ttl is not None:
                    pipe.getex(key, ex=self.ttl)  # refreshes the TTL of a hit (a no-op on a miss)
                else:
                    pipe.get(key)
            raw = await pipe.execute(raise_on_error=False)
        out: list[dict[str, Any] | None] = [None] * len(keys)
        legacy: list[int] = []
        for i, value in enumerate(raw):
            if isinstance(value, ResponseError) and "WRONGTYPE" in str(value):
                legacy.append(i)  # a HASH: written by RedisVL's EmbeddingsCache
            elif isinstance(value, Exception):
                raise value
            elif value is not None:
                out[i] = _entry(value)
        if legacy:
            await self._upgrade([keys[i] for i in legacy], legacy, out)
        return out

    async def amset(self, items: list[dict[str, Any]], ttl: int | None = None) -> list[str]:
        """Store entries (dicts of ``content``, ``model_name``, ``embedding``), replacing
        whatever their keys held, each expiring after ``ttl`` (default: the cache's)."""
        ttl = ttl if ttl is not None else self.ttl
        keys = [self.key(item["content"], item["model_name"]) for item in items]
        if keys:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, item in zip(keys, items, strict=True):
                    pipe.set(key, vector_blob(item["embedding"]), ex=ttl)
                await pipe.execute()
        return keys

    async def aclear(self) -> None:
        """Delete every entry of this cache (a best-effort sweep: ``SCAN`` + ``UNLINK``)."""
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=f"{self.name}:*", count=SCAN_PAGE):
            batch.append(key)
            if len(batch) >= SCAN_PAGE:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)

    async def _upgrade(self, keys: list[str], where: list[int], out: list[dict[str, Any] | None]) -> None:
        """Read entries RedisVL wrote (JSON in a HASH) and rewrite them as float32 bytes."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = await pipe.execute()
        rewrite = []
        for key, i, fields in zip(keys, where, hashes, strict=True):
            try:
                vector = np.asarray(CacheEntry(**convert_bytes(dict(fields))).embedding, dtype=FLOAT32)
            except (ValueError, TypeError, UnicodeDecodeError) as exc:  # pydantic and JSON errors are ValueErrors
                log.warning("unreadable embedding cache entry ignored: %s", exc)
                continue
            out[i] = {"embedding": vector.tolist()}
            rewrite.append((key, vector))
        if rewrite:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, vector in rewrite:
                    pipe.set(key, vector.tobytes(), ex=self.ttl)
                await pipe.execute()


def _entry(blob: bytes) -> dict[str, Any] | None:
    if len(blob) % FLOAT32.itemsize:
        log.warning("embedding cache entry of %d bytes is not float32: ignored", len(blob))
        return None
    return {"embedding": np.frombuffer(blob, dtype=FLOAT32).tolist()}
