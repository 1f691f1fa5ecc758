"""The Redis connection of the memory layer: timeouts, module checks, error mapping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memories.errors import MemoryBusy, MemoryUnavailable, ModuleMissing

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Module names as MODULE LIST reports them, with the name a user knows them by.
REQUIRED_MODULES = {"search": "Search (RediSearch)", "ReJSON": "JSON (RedisJSON)"}

#: Exceptions that mean "Redis is not there right now".
REDIS_DOWN = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    ConnectionError,
    TimeoutError,
    OSError,
)
#: The one name for "memory is out of reach": the memory layer's typed error, or the raw
#: connection errors of a call that went to Redis directly. Connection trouble and timeouts
#: only: any other error (a ``ResponseError`` from a bug, a busy pool) is raised and logged,
#: never silently degraded.
OUTAGE = (MemoryUnavailable, *REDIS_DOWN)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class BoundedPool(aioredis.BlockingConnectionPool):
    """A connection pool of ``max_connections`` where a caller waits up to ``timeout`` seconds
    for a free connection. redis-py's default pool raises "Too many connections" at once, a
    ``ConnectionError`` that is indistinguishable from an outage; a busy pool is load, so
    here it waits, and if the wait runs out it says so with :class:`MemoryBusy`."""

    async def get_connection(self, *args: object, **kwargs: object) -> aioredis.connection.AbstractConnection:
        try:
            return await super().get_connection(*args, **kwargs)
        except redis_errors.ConnectionError as exc:
            if str(exc) != "No connection available.":
                raise
            raise MemoryBusy(f"all {self.max_connections} Redis connections stayed busy for {self.timeout} s "
                             "(raise SAM2VOICE_REDIS_MAX_CONNECTIONS?)") from exc


def connect(url: str, *, connect_timeout_s: float = 1.0, socket_timeout_s: float = 2.0,
            max_connections: int = 64, pool_timeout_s: float = 10.0) -> aioredis.Redis:
    """An asyncio Redis client that fails fast when the server is gone, and waits (bounded)
    rather than failing when all of its ``max_connections`` are busy."""
    pool = BoundedPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        retry_on_timeout=False,
        # One retry on a fresh connection, no backoff: a pooled connection that died with a
        # restarted server is replaced once; a server that is really gone still fails fast
        # (connection refused is immediate).
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)


def unavailable_as_typed_error(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a memory operation so connection trouble raises :class:`MemoryUnavailable`."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (MemoryUnavailable, MemoryBusy):
            raise
        except Exception as exc:
            # RedisVL wraps connection errors in its own types; look through the chain.
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, (*REDIS_DOWN, MemoryBusy)):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, MemoryBusy):
                raise cause from exc
            if cause is None:
                raise
            raise MemoryUnavailable(f"Redis is unavailable during {fn.__qualname__}: {cause}") from exc

    return wrapper


@unavailable_as_typed_error
async def check_modules(client: aioredis.Redis, url: str) -> dict[str, int]:
    """Return the loaded module versions; raise :class:`ModuleMissing` naming any that lacks."""
    modules = await client.execute_command("MODULE", "LIST")
    found: dict[str, int] = {}
    for entry in modules:
        info = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
        name = info.get(b"name", info.get("name"))
        name = name.decode() if isinstance(name, bytes) else str(name)
        found[name] = int(info.get(b"ver", info.get("ver", 0)))
    for module, label in REQUIRED_MODULES.items():
        if module not in found:
            raise ModuleMissing(label, redact(url))
    return found
