"""What benchmarks and evaluations share: a throwaway Redis (``REDIS_URL`` if set, with
scratch namespaces, else an embedded server on a free port in a temporary directory) and
the facts about the machine a figure was measured on."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

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
    server = EmbeddedRedis(Path(data_dir))
    try:
        yield server.start(), "throwaway embedded server"
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python and the versions of the packages that shape the figures."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for dist in ("redis", "redisvl", "langchain-redis", "onnxruntime", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu_model": cpu, "cpu_cores": os.cpu_count(), "ram_gb": ram_gb,
            "os": platform.platform(), "python": platform.python_version(), "packages": versions}


def percentiles(name: str, ms: list[float]) -> dict[str, float | None]:
    """``{name}_p50_ms``, ``_p95_ms`` and ``_max_ms`` of ``ms`` (None when empty)."""
    if not ms:
        return {f"{name}_p50_ms": None, f"{name}_p95_ms": None, f"{name}_max_ms": None}
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {f"{name}_p50_ms": round(cuts[49], 2), f"{name}_p95_ms": round(cuts[94], 2),
            f"{name}_max_ms": round(max(ms), 2)}
