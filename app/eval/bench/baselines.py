"""The baselines the memory benchmark compares against: the same KNN as a raw FT.SEARCH
(the floor) and through langchain-redis ``RedisVectorStore`` (the peer)."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from memories.interventions import RETURN_FIELDS, InterventionMemory
from memories.storage import UserScopedIndex


class RawKnn:
    """The KNN of ``InterventionMemory.rank`` as one hand-built FT.SEARCH: the floor."""

    def __init__(self, client: aioredis.Redis, memory: InterventionMemory, k: int) -> None:
        self.client = client
        self.index = memory.index.name
        self.k = k
        fields = [*(f for f in RETURN_FIELDS if f != "vector_distance"), "vector_distance"]
        self.resp: int | None = None  # RESP version of the replies (redis-py 8 speaks RESP3 by default)
        self.tail = ["RETURN", len(fields), *fields, "SORTBY", "vector_distance", "ASC", "DIALECT", 2,
                     "LIMIT", 0, k, "PARAMS", 2, "vector"]

    def _query(self, user_id: str) -> str:
        # The very filter the memory layer builds (the user's encoded tag).
        return f"({UserScopedIndex.scope(user_id)})=>[KNN {self.k} @embedding $vector AS vector_distance]"

    async def search(self, user_id: str, blob: bytes) -> list[str]:
        """Through the memory layer's own asyncio client."""
        raw = await self.client.execute_command("FT.SEARCH", self.index, self._query(user_id), *self.tail, blob)
        self.resp = 3 if isinstance(raw, dict) else 2
        return _ids(raw)

    async def search_sync(self, client: redis.Redis, user_id: str, blob: bytes) -> list[str]:
        """Through a synchronous redis-py client (async def only to share the timing loop)."""
        return _ids(client.execute_command("FT.SEARCH", self.index, self._query(user_id), *self.tail, blob))


def _ids(raw: Any) -> list[str]:
    """Document ids of a raw FT.SEARCH reply (RESP2 list or RESP3 map)."""
    if isinstance(raw, dict):
        rows = raw.get(b"results", raw.get("results", []))
        return [(r.get(b"id") or r.get("id")).decode() for r in rows]
    return [raw[i].decode() for i in range(1, len(raw), 2)]


def peer_store(url: str, memory: InterventionMemory, embedder: Any) -> Any:
    """langchain-redis ``RedisVectorStore`` attached to the interventions index as it is."""
    from langchain_redis import RedisConfig, RedisVectorStore

    config = RedisConfig(
        index_name=memory.index.name,
        # Our schema object: RedisVectorStore then skips creating anything (the index exists)
        # and builds its queries from the same fields, without an FT.INFO round trip.
        index_schema=memory.index.schema,
        redis_client=redis.Redis.from_url(url),
        content_field="text",
        embedding_field="embedding",
        vector_datatype=memory.settings.vector_datatype.upper(),
        embedding_dimensions=memory.backend.embeddings.dims,
        storage_type="hash",
    )
    return RedisVectorStore(embedder, config=config)


async def peer_search(store: Any, user_id: str, blob: bytes, k: int) -> Any:
    # langchain-redis is synchronous; called inline (nothing else runs on the loop meanwhile).
    # The vector goes in as bytes in the index's datatype: RedisVectorStore's query builder
    # does not pass a dtype, so a list would be sent as float32 even on a float16 index.
    return store.similarity_search_by_vector(blob, k=k, filter=UserScopedIndex.scope(user_id))  # type: ignore[arg-type]

