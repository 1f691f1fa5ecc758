"""Composition: turn :class:`Settings` into a connected memory layer."""

from __future__ import annotations

import logging
import socket

from app.embedded_redis import EmbeddedRedis
from app.settings import Settings
from memories.stack import MemoryStack, open_memory

log = logging.getLogger(__name__)

# Where unix sockets are missing (Windows), the embedded server falls back to TCP on this
# port of 127.0.0.1, with its generated password.
TCP_FALLBACK_PORT = 6479


def embedded_server(settings: Settings) -> EmbeddedRedis:
    """The embedded server these settings describe (started or not)."""
    port = settings.embedded_port
    if port is None and not hasattr(socket, "AF_UNIX"):
        port = TCP_FALLBACK_PORT
    return EmbeddedRedis(settings.data_dir / "redis", port)


def resolve_redis_url(settings: Settings) -> str:
    """``REDIS_URL`` if set; otherwise start (or reuse) the embedded server and return its URL."""
    if settings.redis_url:
        return settings.redis_url
    return embedded_server(settings).start()


async def open_app_memory(settings: Settings, *, create_indexes: bool = True) -> MemoryStack:
    """The memory layer configured by ``settings``."""
    return await open_memory(
        resolve_redis_url(settings),
        settings.memory,
        embedding_provider=settings.embedding_provider,
        google_api_key=settings.google_key,
        google_embedding_model=settings.google_embedding_model,
        google_embedding_dims=settings.google_embedding_dims,
        connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        max_connections=settings.redis_max_connections,
        pool_timeout_s=settings.redis_pool_timeout_s,
        create_indexes=create_indexes,
    )
