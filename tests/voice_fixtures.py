"""What the voice tests share: an event collector (the front end), loud test tones, and
fixtures for a companion rig and the fake Gemini Live server (import them by name)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.eval.fakes.live import FakeLiveServer
from memories.embeddings import LocalMiniLMEmbeddings
from tests.companion_fixtures import Rig, fresh_namespace, open_rig


def tone(ms: int = 400, rate: int = 16_000) -> bytes:
    """A loud 220 Hz tone: the fake Live server's endpointer hears it as speech."""
    t = np.arange(int(rate * ms / 1000)) / rate
    return (3000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


class Collector:
    """A voice session's front end that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def rig(redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(redis_url, minilm, fresh_namespace(), tmp_path) as opened:
        yield opened


@pytest.fixture
async def fake() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer() as server:
        yield server
