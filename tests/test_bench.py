"""Smoke test of ``sam2voice bench memory``: a tiny load against the test server."""

from __future__ import annotations

import math

import pytest
import redis

from app.bench import run_memory_bench
from app.settings import Settings

FIGURES = ["retrieval_p50_ms", "retrieval_p95_ms", "floor_p95_ms", "ours_no_embed_p95_ms", "peer_p95_ms",
           "writes_per_s", "bytes_per_record", "embedder_only_per_s"]


async def test_the_memory_bench_reports_its_figures_and_leaves_nothing_behind(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = Settings()
    assert settings.redis_url == redis_url

    result = await run_memory_bench(settings, records=200, users=2, queries=20, console=None)

    assert result["n_records"] == 200
    assert result["n_users"] == 2
    assert result["index_num_docs"] == 200
    for key in FIGURES:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["query_cache_entries"] == 20 + 20  # warm-up and timed retrievals each cached a vector
    assert result["query_cache_bytes_per_entry"] > 0
    assert result["same_neighbours_all_paths"] is True
    assert result["settings"]["vector_datatype"] == settings.memory.vector_datatype
    assert result["machine"]["cpu_cores"] >= 1

    namespace = result["namespace"]
    assert namespace.startswith("bench")
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{namespace}:*")) == []
        assert not [i for i in client.execute_command("FT._LIST") if i.decode().startswith(f"{namespace}:")]
    finally:
        client.close()


async def test_the_voice_bench_times_every_turn_against_the_fake_live_server(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.bench.voice import run_voice_bench

    monkeypatch.setenv("REDIS_URL", redis_url)
    result = await run_voice_bench(Settings(), turns=10, interventions=50, console=None)
    assert result["context_updates_sent"] == 10  # every timed turn sent its few-shot context
    for key in ("memory_path_p50_ms", "memory_path_p95_ms", "first_audio_p50_ms", "first_audio_p95_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["memory_path_p95_ms"] >= result["memory_path_p50_ms"]
