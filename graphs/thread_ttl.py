"""An ended session's conversation expires: native Redis TTLs on its thread's checkpoint keys.

langgraph-checkpoint-redis can give *every* checkpoint a TTL (the saver's ``ttl`` config), but
that would also expire a conversation still going on, and its per-key helper does not await on
an asyncio client. So the companion sets the TTL itself, once, when a session ends, on the keys
the shallow saver keeps for the thread: per checkpoint namespace the checkpoint document, the
registry of its pending-write keys and those write keys (found the way the saver's own
``adelete_thread`` finds them, through its index).

A thread used again before it expires keeps working (a write keeps a key's TTL); ending it
again starts the clock again.
"""

from __future__ import annotations

import logging

from langgraph.checkpoint.redis.ashallow import AsyncShallowRedisSaver
from langgraph.checkpoint.redis.util import to_storage_safe_str
from redisvl.query import FilterQuery
from redisvl.query.filter import Tag

log = logging.getLogger(__name__)

#: More checkpoint namespaces than one thread of the companion graph ever has (it has one).
_MAX_NAMESPACES = 1000


async def thread_keys(saver: AsyncShallowRedisSaver, thread_id: str) -> list[str]:
    """Every Redis key ``saver`` keeps for ``thread_id`` (key layout of langgraph-checkpoint-redis 0.5.2)."""
    if not isinstance(saver, AsyncShallowRedisSaver):
        raise TypeError(f"thread TTLs need the companion's AsyncShallowRedisSaver, not {type(saver).__name__}")
    found = await saver.checkpoints_index.search(FilterQuery(
        filter_expression=Tag("thread_id") == thread_id, return_fields=["checkpoint_ns"],
        num_results=_MAX_NAMESPACES))
    keys: list[str] = []
    for namespace in sorted({getattr(doc, "checkpoint_ns", "") for doc in found.docs}):
        registry = f"write_keys_zset:{thread_id}:{to_storage_safe_str(namespace)}:shallow"
        writes = await saver._redis.zrange(registry, 0, -1)  # the saver's own client: its keys
        keys += [saver._make_shallow_redis_checkpoint_key(thread_id, namespace), registry]
        keys += [w.decode() if isinstance(w, bytes) else str(w) for w in writes]
    return keys


async def expire_thread(saver: AsyncShallowRedisSaver, thread_id: str, ttl_s: int) -> int:
    """Let ``thread_id``'s checkpoints expire in ``ttl_s`` seconds; how many keys got the TTL."""
    keys = await thread_keys(saver, thread_id)
    if not keys:
        return 0
    async with saver._redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.expire(key, ttl_s)
        done = sum(bool(ok) for ok in await pipe.execute())
    log.debug("thread %s: %d keys expire in %d s", thread_id, done, ttl_s)
    return done
