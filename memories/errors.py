"""Typed errors of the memory layer.

Every error says what was wrong in words a user (or a developer reading a log)
can act on; none of them is ever swallowed silently by the memory layer.
"""

from __future__ import annotations


class MemoryLayerError(Exception):
    """Base class of every error raised by ``memories``."""


class InvalidInput(MemoryLayerError, ValueError):
    """The caller passed something the memory layer refuses; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class MemoryUnavailable(MemoryLayerError, ConnectionError):
    """Redis could not be reached (or timed out); the call failed fast."""


class MemoryBusy(MemoryLayerError, RuntimeError):
    """Every pooled Redis connection stayed busy past the pool timeout. Redis is up, so this
    is load, not an outage: it is raised (and logged), never taken as "memory offline"."""


class ModuleMissing(MemoryLayerError, RuntimeError):
    """The Redis server lacks a module the memory layer needs (Search or JSON)."""

    def __init__(self, module: str, url: str) -> None:
        self.module = module
        super().__init__(
            f"The Redis server at {url} has no {module} module. sam2voice needs "
            "Redis with Search and JSON: use Redis 8, Redis Stack 7.2+ or Redis Cloud, "
            "or unset REDIS_URL so sam2voice starts its embedded server."
        )


class RecordNotFound(MemoryLayerError, KeyError):
    """No record with that id exists for that user."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "record not found"


class UnknownElement(MemoryLayerError, KeyError):
    """A memory element name that the registry does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown memory element"
