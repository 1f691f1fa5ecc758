"""Weave ops for memory operations (and, via ``graphs.tracing``, for graph nodes), and the
hook through which a server counts them.

Importing this module sets two defaults before weave is imported: weave is disabled
unless ``WANDB_API_KEY`` is set (so it never prompts or touches the network), and its
crash reporting to a third party is off unless the person opts in with
``WANDB_ERROR_REPORTING=true``.

**Observing.** Every ``traced`` operation also reports how long it took to the
:class:`Observer` of the running context, if there is one (``with observing(obs): ...``;
the web server installs a Prometheus one, ``app.web.metrics``). It is a context variable, not a
global: each server app observes only its own requests, and without one the cost is a
single lookup. The observer hears names and durations only, never arguments.

**The running turn.** ``current_turn`` is the id of the turn this context runs in (the log
formatter puts it on every line). Front ends name a turn (``graphs.tracing.turn_scope``);
graph nodes and tools, run outside one, name it by its turn key (``within_turn``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Protocol, TypeVar

os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
if not os.environ.get("WANDB_API_KEY"):
    os.environ.setdefault("WEAVE_DISABLED", "true")

import weave  # noqa: E402  (the environment above must be set first)

F = TypeVar("F", bound=Callable[..., Any])
#: What was timed: a memory operation, a graph node, a coaching tool, or a whole turn (one graph run).
OpKind = Literal["memory", "node", "tool", "turn"]
#: What happened in a turn that is worth counting (never with who or what was said).
Event = Literal["outcome_settled", "safety_event"]


class Observer(Protocol):
    """Hears what the running context did: durations of operations and turn events."""

    def timed(self, kind: OpKind, name: str, seconds: float, *, failed: bool) -> None:
        """An operation ``name`` of ``kind`` took ``seconds`` (``failed``: it raised)."""

    def counted(self, event: Event, kind: str | None = None) -> None:
        """One ``event`` happened (``kind``: e.g. the outcome that was settled)."""


_observer: ContextVar[Observer | None] = ContextVar("sam2voice_observer", default=None)
_turn: ContextVar[str | None] = ContextVar("sam2voice_turn", default=None)


def current_turn() -> str | None:
    """The id of the turn running in this context, or None outside a turn."""
    return _turn.get()


@contextmanager
def within_turn(turn_id: str | None) -> Iterator[None]:
    """Run inside the turn ``turn_id``, unless a turn is named already (the outer name stays)."""
    if turn_id is None or _turn.get() is not None:
        yield
        return
    token = _turn.set(turn_id)
    try:
        yield
    finally:
        _turn.reset(token)


def current_observer() -> Observer | None:
    """The observer of the running context, or None."""
    return _observer.get()


@contextmanager
def observing(observer: Observer | None) -> Iterator[None]:
    """Report the traced operations run inside (and in tasks started inside) to ``observer``."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


@contextmanager
def timing(kind: OpKind, name: str) -> Iterator[None]:
    """Report how long the block took (and whether it raised) to the running observer."""
    watcher = _observer.get()
    if watcher is None:
        yield
        return
    start, failed = time.perf_counter(), True
    try:
        yield
        failed = False
    finally:
        watcher.timed(kind, name, time.perf_counter() - start, failed=failed)


def timed(kind: OpKind, name: str) -> Callable[[F], F]:
    """Report each call of an async function to the running observer (no weave op)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def observed(*args: Any, **kwargs: Any) -> Any:
            with timing(kind, name):
                return await fn(*args, **kwargs)

        return observed  # type: ignore[return-value]

    return wrap


def traced(name: str) -> Callable[[F], F]:
    """Mark a memory operation as a weave op called ``name`` (untraced, a few µs, until
    weave.init) whose duration the running observer hears."""

    def wrap(fn: F) -> F:
        return weave.op(name=name)(timed("memory", name)(fn))  # type: ignore[return-value]

    return wrap
