"""Smoke test of ``sam2voice bench memory``: a tiny load against the test server."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import redis

from app.eval.bench import run_memory_bench
from app.settings import Settings

FIGURES = ["retrieval_p50_ms", "retrieval_p95_ms", "retrieval_hit_p95_ms", "floor_p95_ms", "ours_no_embed_p95_ms",
           "peer_p95_ms", "writes_per_s", "bytes_per_record", "embedder_only_per_s"]


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
    assert 0 < result["query_cache_bytes_per_entry"] < 2000  # float32 bytes, not JSON (~9 KB)
    # Every timed retrieval embedded its query (a miss), then read it back from Redis (a hit).
    assert result["retrieval_embedding_cache_misses"] == 20
    assert result["retrieval_hit_embedding_cache_hits"] == 20
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
    from app.eval.bench.voice import run_voice_bench

    monkeypatch.setenv("REDIS_URL", redis_url)
    result = await run_voice_bench(Settings(), turns=10, interventions=50, console=None)
    assert result["context_updates_sent"] == 10  # every timed turn sent its few-shot context
    for key in ("memory_path_p50_ms", "memory_path_p95_ms", "first_audio_p50_ms", "first_audio_p95_ms"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["memory_path_p95_ms"] >= result["memory_path_p50_ms"]


LOAD_KEYS = ["people", "turns_per_person", "total_turns", "wall_s", "turns_per_s", "turn_p50_ms", "turn_p95_ms",
             "turn_max_ms", "errors", "errors_by_type", "degraded_turns", "leaks", "machine"]


async def test_the_load_bench_runs_people_at_once_without_errors_or_leaks(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.eval.bench.load import run_load_bench

    monkeypatch.setenv("REDIS_URL", redis_url)
    result = await run_load_bench(Settings(), people=3, turns=3, console=None)

    for key in LOAD_KEYS:
        assert key in result, key
    assert (result["people"], result["turns_per_person"], result["total_turns"]) == (3, 3, 9)
    assert result["errors"] == 0, result["errors_by_type"]
    assert result["completed_turns"] == 9
    assert result["leaks"] == 0, result["leaked"]
    assert result["own_marker_found"] == 3  # every export holds its own marker: the leak check is not vacuous
    assert 0 < result["turn_p50_ms"] <= result["turn_p95_ms"] <= result["turn_max_ms"]
    assert result["turns_per_s"] > 0 and result["machine"]["cpu_count"] >= 1
    client = redis.Redis.from_url(redis_url)
    try:  # the scratch namespace is gone afterwards
        assert list(client.scan_iter(match=f"{result['namespace']}:*")) == []
    finally:
        client.close()


async def test_the_load_bench_voice_path_reports_the_memory_path(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.eval.bench.load import run_load_bench

    monkeypatch.setenv("REDIS_URL", redis_url)
    result = await run_load_bench(Settings(), people=2, turns=3, voice=True, console=None)

    assert result["path"] == "voice"
    assert result["errors"] == 0, result["errors_by_type"]
    assert result["completed_turns"] == 6
    assert result["leaks"] == 0, result["leaked"]
    assert result["own_marker_found"] == 2
    assert result["context_updates_sent"] >= 1  # sent only when the few-shot context changed
    assert 0 < result["memory_path_p50_ms"] <= result["memory_path_p95_ms"]


def test_a_leaked_marker_is_detected() -> None:
    from app.eval.bench.load import find_leaks, marker, script

    markers = {"a": marker(1), "b": marker(2), "c": marker(12)}
    assert all(marker(1) in text for text in script(1, 5))  # each message carries its person's marker
    clean = {"a": {"interventions": [{"situation": script(1, 1)[0]}]}, "b": {"said": [script(2, 1)[0]]}, "c": {}}
    assert find_leaks(clean, markers) == {}
    leaked = {**clean, "b": {"said": [script(2, 1)[0]], "conversations": {"s1": ["I can't start ZQ1X today"]}}}
    assert find_leaks(leaked, markers) == {"b": ["a"]}
    # zq1x is a whole word: zq12x (person c's) does not count as person a's
    assert find_leaks({"a": ["zq12x"], "c": []}, markers) == {"a": ["c"]}


async def test_the_chaos_bench_loses_and_doubles_nothing_through_kill_9() -> None:
    from app.eval.bench.chaos import run_chaos_bench

    # The short version of `sam2voice bench chaos` (200 turns, 50 kills in docs/benchmarks.md):
    # two processes on one data dir, the embedded Redis killed -9 ten times, mid-turn.
    figures = await run_chaos_bench(Settings(), turns=40, kills=10, seed=3)
    assert figures["kills"] == 10 and figures["interventions_expected"] >= 20
    assert figures["interventions_found"] == figures["interventions_expected"]
    for key in ("interventions_duplicated", "interventions_lost", "outcomes_lost", "tool_state_lost", "exceptions"):
        assert figures[key] == 0, (key, {p: (f["tool_state_problems"], f["exception_samples"])
                                         for p, f in figures["per_process"].items()})
    assert figures["longest_turn_s"] <= 5.0 and figures["target_met"]


SERVE_KEYS = ["sign_up_p50_ms", "sign_up_p95_ms", "sign_in_p50_ms", "sign_in_p95_ms", "healthz_idle_p95_ms",
              "healthz_flood_p50_ms", "healthz_flood_p95_ms", "flood_frames_sent", "flood_frames_accepted_max",
              "sockets_opened", "turns", "turn_p50_ms", "turn_p95_ms", "turn_max_ms", "busy", "errors",
              "turns_per_s", "planned_turns_per_s", "healthz_turns_p95_ms", "targets", "machine"]


@pytest.mark.slow
async def test_the_serve_bench_measures_a_real_server_subprocess_and_stops_it() -> None:
    import socket

    from app.eval.bench.serve import run_serve_bench

    # The short version of `sam2voice bench serve` (200 sockets in docs/benchmarks.md): the real
    # server in a subprocess, 5 websockets x 2 typed turns, a 1.5 s audio flood (~20 s in all).
    result = await run_serve_bench(sockets=5, turns=2, pace_s=1.0, sign_ins=3, flood_s=1.5, idle_s=0.5)

    for key in SERVE_KEYS:
        assert key in result, key
    assert (result["sign_ups"], result["sign_ins"]) == (7, 3)  # 5 sockets + the flooder + the warm-up person
    assert result["sign_up_failures"] == {} and result["sign_in_failures"] == {}
    assert 0 < result["sign_in_p50_ms"] <= result["sign_in_p95_ms"]
    assert result["sockets_opened"] == 5 and result["connect_failures"] == {}
    assert result["turns"] == 5 * 2 and result["errors"] == 0, result["error_frames"]
    assert result["busy"] == 0 and result["sockets_closed_by_server"] == 0
    assert 0 < result["turn_p50_ms"] <= result["turn_p95_ms"] <= result["turn_max_ms"]
    assert result["flood_frames_sent"] > result["flood_frames_accepted_max"] > 0  # it really flooded
    assert result["flood_rate_limited_errors"] >= 1 and result["healthz_flood_failures"] == 0
    assert 1008 in result["flood_close_codes"]  # the flooder was closed (and its reconnects held back)
    assert set(result["targets"]) == {"healthz_flood_p95_ms<=50", "turn_p95_ms<=500"}
    with socket.socket() as probe:  # the server and its Redis (on a unix socket: no TCP port) are gone
        assert probe.connect_ex(("127.0.0.1", result["server_port"])) != 0
    assert result["redis_socket"].endswith(".sock") and not Path(result["redis_socket"]).exists()
