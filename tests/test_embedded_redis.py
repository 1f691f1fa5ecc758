"""The embedded server: start, reuse, stop, persistence across restarts, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.embedded_redis import EmbeddedRedis, EmbeddedRedisError, server_binary
from memories.connection import check_modules, connect
from memories.errors import ModuleMissing
from memories.profile import ProfileMemory
from memories.stack import open_memory
from tests.conftest import free_port, memory_settings


def test_start_reuses_a_running_server_and_stop_stops_it(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, free_port())
    assert not server.status().running
    url = server.start()
    pid = server.status().pid
    assert server.start() == url  # second start reuses
    assert server.status().pid == pid
    status = server.status()
    assert status.running and status.url.startswith("redis://127.0.0.1:")
    assert server.stop() is True
    assert not server.status().running
    assert server.stop() is False


def test_a_port_taken_by_another_server_is_a_clear_error(tmp_path: Path, embedded: EmbeddedRedis) -> None:
    intruder = EmbeddedRedis(tmp_path, embedded.port)  # same port, different data dir: not ours
    with pytest.raises(EmbeddedRedisError, match="taken by another server"):
        intruder.start()


async def test_memories_survive_a_server_restart(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    server = EmbeddedRedis(tmp_path, free_port())
    settings = memory_settings()
    embed = (minilm, minilm.model_id, minilm.dims)
    stack = await open_memory(server.start(), settings, base_embeddings=embed)
    profile = stack.registry.get(ProfileMemory)
    assert profile is not None
    await profile.update("ada", {"name": "Ada", "timezone": "Europe/London"})
    await stack.aclose()
    server.stop()

    stack = await open_memory(server.start(), settings, base_embeddings=embed)
    try:
        restored = await stack.registry.get(ProfileMemory).get("ada")  # type: ignore[union-attr]
        assert restored is not None and restored.name == "Ada" and restored.timezone == "Europe/London"
    finally:
        await stack.aclose()
        server.stop()


async def test_a_server_without_search_or_json_is_named_in_the_error(tmp_path: Path) -> None:
    port = free_port()
    bare = subprocess.Popen([str(server_binary()), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path), "--save", ""], stdout=subprocess.DEVNULL)
    try:
        client = connect(f"redis://127.0.0.1:{port}")
        for _ in range(100):
            try:
                await client.ping()
                break
            except Exception:
                import asyncio

                await asyncio.sleep(0.05)
        with pytest.raises(ModuleMissing, match="Search") as caught:
            await check_modules(client, f"redis://127.0.0.1:{port}")
        assert "REDIS_URL" in str(caught.value)
        await client.aclose()
    finally:
        bare.terminate()
        bare.wait(10)
