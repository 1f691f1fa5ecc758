"""Shared fixtures: one real embedded server per test session, a fresh namespace per test."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from app.embedded_redis import EmbeddedRedis
from memories.base import MemoryElement
from memories.config import MemorySettings
from memories.embeddings import LocalMiniLMEmbeddings
from memories.stack import MemoryStack, open_memory

E = TypeVar("E", bound=MemoryElement)  # type: ignore[type-arg]
pytest_plugins = ["tests.voice_fixtures"]  # the voice tests' `rig` and `fake` (Live server) fixtures


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The real embedded server (valkey + Search + JSON) on its private unix socket, as the app
    runs it, for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(embedded: EmbeddedRedis) -> str:
    return embedded.url


@pytest.fixture(scope="session")
def minilm() -> LocalMiniLMEmbeddings:
    """The offline embedder, loaded once per session."""
    return LocalMiniLMEmbeddings()


def memory_settings(**overrides: object) -> MemorySettings:
    """Settings with a namespace of its own, so tests never see each other's data."""
    return MemorySettings(namespace=f"t{uuid.uuid4().hex[:12]}", **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def stack(redis_url: str, minilm: LocalMiniLMEmbeddings) -> AsyncIterator[MemoryStack]:
    """A connected memory layer with all five elements in a fresh namespace."""
    opened = await open_memory(redis_url, memory_settings(), base_embeddings=(minilm, minilm.model_id, minilm.dims))
    yield opened
    await opened.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


def element(stack: MemoryStack, kind: type[E]) -> E:
    """The enabled element of a class; fails the test if it is switched off."""
    found = stack.registry.get(kind)
    assert found is not None, f"{kind.__name__} is not enabled"
    return found
