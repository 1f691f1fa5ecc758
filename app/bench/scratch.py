"""A throwaway Redis for benchmarks and evaluations: ``REDIS_URL`` if set (they then use
scratch namespaces), else an embedded server on a free port in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.embedded_redis import EmbeddedRedis
from app.settings import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_redis(settings: Settings) -> Iterator[tuple[str, str]]:
    """Yield ``(url, description)``; a server started here is stopped and deleted after."""
    if settings.redis_url:
        yield settings.redis_url, "REDIS_URL (scratch namespace)"
        return
    data_dir = tempfile.mkdtemp(prefix="sam2voice-scratch-")
    server = EmbeddedRedis(Path(data_dir), free_port())
    try:
        yield server.start(), "throwaway embedded server"
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
