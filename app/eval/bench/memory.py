"""``sam2voice bench memory``: load synthetic interventions and time few-shot retrieval.

Everything happens in a scratch namespace: on a throwaway embedded server (fresh data
directory, free port) when ``REDIS_URL`` is unset, so memory figures are clean and the
user's own data is never touched; or on the ``REDIS_URL`` server under a random
``bench<hex>`` namespace whose keys and indexes are deleted afterwards.

Figures (see docs/benchmarks.md for what each one means):

* ``retrieval_*``: ``InterventionMemory.similar_successes`` end to end, embedding included,
  on query texts never seen before (so the embedding cache cannot hide the embedding: every
  one is a miss, ``retrieval_embedding_cache_misses``);
* ``retrieval_hit_*``: the same queries again, each vector read from the Redis embedding
  cache (``retrieval_hit_embedding_cache_hits``);
* ``floor_*``: the same KNN as one raw ``FT.SEARCH`` through the layer's redis-py asyncio
  client (precomputed vector); ``floor_sync_*`` the same on a synchronous client;
* ``ours_no_embed_*``: ``InterventionMemory.rank`` with the same precomputed vectors;
* ``peer_*``: the same KNN through langchain-redis ``RedisVectorStore.similarity_search_by_vector``;
* ``writes_per_s``: batched ``record_many`` over the whole load, embedding included
  (``embedder_only_per_s``: the bare embedder, its ceiling);
* ``bytes_per_record``: growth of Redis ``used_memory`` over the load, per record.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.eval.bench.baselines import RawKnn, peer_search, peer_store
from app.eval.bench.common import machine, scratch_redis
from app.eval.bench.synthetic import SEED, novel_queries, synthetic_interventions
from app.settings import Settings
from memories.interventions import RETURN_FIELDS, InterventionMemory
from memories.records import TurnInputs
from memories.stack import MemoryStack, open_memory

BATCH = 500
WARMUP = 20


# --- helpers ---------------------------------------------------------------------------------

def _ms_stats(name: str, samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean in milliseconds from samples in seconds."""
    ms = [s * 1000 for s in samples]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {f"{name}_p50_ms": round(cuts[49], 3), f"{name}_p95_ms": round(cuts[94], 3),
            f"{name}_mean_ms": round(statistics.fmean(ms), 3)}


async def _used_memory(client: aioredis.Redis) -> int:
    # Let the server finish lazy frees (UNLINK) and settle before reading the allocator.
    await asyncio.sleep(0.2)
    return int((await client.info("memory"))["used_memory"])


async def _scan_keys(client: aioredis.Redis, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern, count=1000)]


async def _server_info(client: aioredis.Redis) -> dict[str, Any]:
    info = await client.info("server")
    modules = await client.execute_command("MODULE", "LIST")
    found = {}
    for entry in modules:
        item = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
        name = item.get(b"name", item.get("name"))
        found[name.decode() if isinstance(name, bytes) else str(name)] = int(item.get(b"ver", item.get("ver", 0)))
    return {"server": "valkey" if "valkey_version" in info else "redis",
            "server_version": str(info.get("valkey_version", info.get("redis_version"))),
            "modules": found}


async def _time(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# --- the benchmark ---------------------------------------------------------------------------

async def run_memory_bench(
    settings: Settings, *, records: int, users: int, queries: int, console: Console | None
) -> dict[str, Any]:
    """Run the memory benchmark; returns its figures as a JSON-ready dict.

    Prints progress on ``console`` when given and nothing at all otherwise.
    """
    if records < 1 or users < 1 or queries < 2:
        raise ValueError("records and users must be >= 1, queries >= 2")
    users = min(users, records)
    namespace = f"bench{secrets.token_hex(6)}"
    with scratch_redis(settings) as (url, where):
        result = await _bench(settings, url, namespace, records=records, users=users, queries=queries,
                              console=console)
    result["redis"] = where
    result["namespace"] = namespace  # deleted by now, with all its keys and indexes
    return result


async def _bench(settings: Settings, url: str, namespace: str, *, records: int, users: int, queries: int,
                 console: Console | None) -> dict[str, Any]:
    memory_settings = settings.memory.model_copy(update={"namespace": namespace, "enabled": ["interventions"]})
    stack = await open_memory(url, memory_settings, embedding_provider=settings.embedding_provider,
                              google_api_key=settings.google_key,
                              google_embedding_model=settings.google_embedding_model,
                              google_embedding_dims=settings.google_embedding_dims,
                              connect_timeout_s=settings.redis_connect_timeout_s,
                              # a 500-record pipeline on a busy 2-core box can exceed the
                              # app's fail-fast socket timeout; the bench is not a turn
                              socket_timeout_s=max(settings.redis_socket_timeout_s, 30.0))
    try:
        return await _measure(stack, url, records=records, users=users, queries=queries, console=console)
    finally:
        await _drop_namespace(stack, namespace)
        await stack.aclose()


async def _drop_namespace(stack: MemoryStack, namespace: str) -> None:
    """Delete every index and key of the scratch namespace."""
    for element in stack.registry:
        if await element.index.index.exists():
            await element.index.index.delete(drop=False)
    keys = await _scan_keys(stack.client, f"{namespace}:*")
    for start in range(0, len(keys), 1000):
        await stack.client.unlink(*keys[start : start + 1000])


async def _measure(stack: MemoryStack, url: str, *, records: int, users: int, queries: int,
                   console: Console | None) -> dict[str, Any]:
    memory = stack.registry.get(InterventionMemory)
    assert memory is not None  # enabled above
    client, embeddings, settings = stack.client, stack.embeddings, memory.settings
    data = synthetic_interventions(records)
    situations = [_situation(item) for item in data]
    user_ids = [f"bench-user-{u:05d}" for u in range(users)]
    per_user: dict[str, list[dict[str, Any]]] = {u: [] for u in user_ids}
    for i, item in enumerate(data):
        per_user[user_ids[i % users]].append(item)
    batches = [(u, items[s : s + BATCH]) for u, items in per_user.items() for s in range(0, len(items), BATCH)]

    # The bare embedder on (up to) 1,000 distinct situations of the load: the ceiling of
    # writes_per_s. This also loads the model, which happens lazily on first use.
    await embeddings.inner.aembed_query("warm up the embedder")
    sample = list(dict.fromkeys(situations))[:1000]
    embedder_s = await _time(lambda: embeddings.inner.aembed_documents(sample))

    # --- load ------------------------------------------------------------------------------
    memory_before = await _used_memory(client)
    started = time.perf_counter()
    with _progress(console) as progress:
        task = progress.add_task("loading interventions", total=records)
        for user_id, batch in batches:
            await memory.record_many(user_id, batch)
            progress.advance(task, len(batch))
    load_s = time.perf_counter() - started
    memory_after = await _used_memory(client)
    cache_pattern = f"{settings.namespace}:embedcache:*"
    load_cache_keys = set(await _scan_keys(client, cache_pattern))  # none unless record_many caches
    index_info = await memory.index.index.info()

    # --- retrieval, embedding included -----------------------------------------------------
    # Query texts are new (in no record, so in no cache entry): every retrieval embeds.
    rng = random.Random(SEED + 2)
    texts = novel_queries(WARMUP + queries, set(situations))
    warm_texts, query_texts = texts[:WARMUP], texts[WARMUP:]
    warm_users = [rng.choice(user_ids) for _ in range(WARMUP)]
    query_users = [rng.choice(user_ids) for _ in range(queries)]
    for text, user_id in zip(warm_texts, warm_users, strict=True):
        await memory.similar_successes(user_id, text)
    if console is not None:
        console.print(f"timing {queries} retrievals (embedding included)...")
    misses_before = embeddings.misses
    retrieval = [await _time(lambda t=text, u=user_id: memory.similar_successes(u, t))
                 for text, user_id in zip(query_texts, query_users, strict=True)]
    retrieval_misses = embeddings.misses - misses_before
    # The same queries again: each vector now comes from the Redis cache (the in-process layer
    # is emptied before each, so none is served from memory).
    hits_before = embeddings.hits
    retrieval_hit = []
    for text, user_id in zip(query_texts, query_users, strict=True):
        embeddings._recent.clear()
        retrieval_hit.append(await _time(lambda t=text, u=user_id: memory.similar_successes(u, t)))
    retrieval_hits = embeddings.hits - hits_before

    # --- the same KNN with precomputed vectors: floor, ours, peer (interleaved) ------------
    vectors = await embeddings.inner.aembed_documents(query_texts)
    blobs = [memory.index.vector_bytes(v) for v in vectors]
    pool = max(settings.candidate_pool, settings.few_shot_k * 3)  # what InterventionMemory.rank asks for
    floor = RawKnn(client, memory, pool)
    sync_client = redis.Redis.from_url(url)
    peer = peer_store(url, memory, embeddings.inner)
    try:
        runners: dict[str, Callable[[int], Awaitable[Any]]] = {
            "floor": lambda i: floor.search(query_users[i], blobs[i]),
            "floor_sync": lambda i: floor.search_sync(sync_client, query_users[i], blobs[i]),
            "ours_no_embed": lambda i: memory.rank(query_users[i], vectors[i]),
            "peer": lambda i: peer_search(peer, query_users[i], blobs[i], pool),
        }
        names = list(runners)
        for i in range(WARMUP):  # connections, code paths, server caches
            for name in names:
                await runners[name](i % queries)
        if console is not None:
            console.print(f"timing {queries} x {len(names)} KNN queries with precomputed vectors...")
        samples: dict[str, list[float]] = {name: [] for name in names}
        for i in range(queries):
            shift = i % len(names)  # rotate the order so no path always runs first or last
            for name in names[shift:] + names[:shift]:
                samples[name].append(await _time(lambda n=name, j=i: runners[n](j)))

        # Sanity: all paths see the same nearest neighbours.
        ours_rows = await memory.index.nearest(query_users[0], vectors[0], k=pool, return_fields=RETURN_FIELDS)
        peer_docs = await peer_search(peer, query_users[0], blobs[0], pool)
        floor_ids = await floor.search(query_users[0], blobs[0])
        same_neighbours = [r["id"] for r in ours_rows] == floor_ids == [d.metadata["id"] for d in peer_docs]
    finally:
        sync_client.close()
        peer.index.client.close()

    # Each retrieval cached its query vector; measure those entries apart from the load.
    query_cache_keys = set(await _scan_keys(client, cache_pattern)) - load_cache_keys
    load_cache_bytes = await _memory_of(client, list(load_cache_keys))
    query_cache_bytes = await _memory_of(client, list(query_cache_keys))
    grown = memory_after - memory_before
    return {
        "n_records": records,
        "n_users": users,
        "n_queries": queries,
        "records_per_user": records // users,
        "distinct_situations": len(set(situations)),
        **_ms_stats("retrieval", retrieval),
        **_ms_stats("retrieval_hit", retrieval_hit),
        **_ms_stats("floor", samples["floor"]),
        **_ms_stats("floor_sync", samples["floor_sync"]),
        **_ms_stats("ours_no_embed", samples["ours_no_embed"]),
        **_ms_stats("peer", samples["peer"]),
        "ours_no_embed_vs_floor_p95": round(_p95(samples["ours_no_embed"]) / _p95(samples["floor"]), 2),
        "writes_per_s": round(records / load_s, 1),
        "load_s": round(load_s, 2),
        "embedder_only_per_s": round(len(sample) / embedder_s, 1),
        "bytes_per_record": round(grown / records, 1),
        "embedding_cache_bytes": load_cache_bytes,
        "embedding_cache_entries": len(load_cache_keys),
        "record_bytes_per_record": round((grown - load_cache_bytes) / records, 1),
        "query_cache_entries": len(query_cache_keys),
        "query_cache_bytes_per_entry": (round(query_cache_bytes / len(query_cache_keys), 1)
                                        if query_cache_keys else None),
        "used_memory_before": memory_before,
        "used_memory_after_load": memory_after,
        "index_vector_index_sz_mb": _float(index_info.get("vector_index_sz_mb")),
        "index_num_docs": int(index_info.get("num_docs", 0)),
        "retrieval_embedding_cache_misses": retrieval_misses,
        "retrieval_hit_embedding_cache_hits": retrieval_hits,
        "same_neighbours_all_paths": same_neighbours,
        "settings": {"vector_datatype": settings.vector_datatype, "candidate_pool": settings.candidate_pool,
                     "knn_k": pool, "few_shot_k": settings.few_shot_k, "record_many_batch": BATCH,
                     "index_algorithm": "flat", "distance_metric": "cosine", "embedding": embeddings.tag,
                     "resp": floor.resp},
        "machine": {**machine(), "loadavg_1m_at_end": _loadavg()},
        **(await _server_info(client)),
    }


def _p95(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94]


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _situation(item: dict[str, Any]) -> str:
    """The text a record is embedded by (so queries can avoid every one of them)."""
    return TurnInputs(message=item["user_context"], task=item["task"]).situation


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


async def _memory_of(client: aioredis.Redis, keys: list[bytes]) -> int:
    """Bytes the embedding cache entries take: the drop of used_memory when they are deleted.

    Run last: the entries are gone afterwards (the namespace is dropped right after anyway).
    """
    if not keys:
        return 0
    before = await _used_memory(client)
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])  # DEL, not UNLINK: freed before we measure
    return max(before - await _used_memory(client), 0)


def _progress(console: Console | None) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=console is None)
