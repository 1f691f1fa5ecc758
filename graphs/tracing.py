"""Weave tracing and turn observation for the graph.

* Every node is a weave op (``traced``, the nodes' decorator); tracing is on only when ``WANDB_API_KEY`` and a
  project name are set (``init_tracing``). Otherwise ops run untraced: no prompt, no
  network, no delay.
* Every node also reports its duration, and what the turn settled (outcomes by kind, a
  safety reply: counts only), to the running observer (``memories.tracing.observing``).
* A **turn id** is on every log line of a turn (``current_turn``, read by the log
  formatter): the front ends open a ``turn_scope`` around each graph run; a run outside one
  (Studio, tests, evaluations) uses its turn key (the message id) inside the nodes.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig

from memories.tracing import Observer, current_observer, current_turn, timing, weave, within_turn

__all__ = ["current_turn", "init_tracing", "report_turn_events", "traced", "turn_scope"]
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def init_tracing(project: str | None) -> bool:
    """Start weave tracing when a W&B key and a project are configured; returns whether it is on."""
    if not (os.environ.get("WANDB_API_KEY") and project):
        return False
    os.environ.pop("WEAVE_DISABLED", None)
    try:
        weave.init(project)
    except Exception as exc:  # tracing must never stop a session
        log.warning("weave tracing is off: %s", exc)
        os.environ["WEAVE_DISABLED"] = "true"  # back to the offline no-op, for the rest of the process
        return False
    log.info("weave tracing on: project %s", project)
    return True


@contextmanager
def turn_scope(kind: str) -> Iterator[str]:
    """One turn (``kind``: text, heard, tool_call, refresh, end, ...): everything logged inside
    carries its id, and the running observer hears how long it took. A scope inside another
    is the same turn (same id, timed once)."""
    outer = current_turn()
    if outer is not None:
        yield outer
        return
    turn_id = f"t{uuid.uuid4().hex[:16]}"
    with timing("turn", kind), within_turn(turn_id):
        yield turn_id


def report_turn_events(watcher: Observer, update: Any) -> None:
    """What a node's state update tells the observer: each outcome it settled (by kind) and
    a safety reply decided (``decision.source == "safety"``). Counts only, nothing said."""
    if not isinstance(update, dict):
        return
    for entry in update.get("settled") or []:
        watcher.counted("outcome_settled", str(entry.get("outcome") or "unknown"))
    if (decision := update.get("decision")) is not None and decision.safety:
        watcher.counted("safety_event")


def traced(name: str) -> Callable[[F], F]:
    """Mark a graph node ``async (state, config, **deps)`` as a weave op called ``name`` that
    the running observer times, carrying the turn id into its logs."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def observed(state: Any, config: RunnableConfig, **kwargs: Any) -> Any:
            # Run outside a front end's turn scope, the turn key names the turn.
            with timing("node", name), within_turn(((config or {}).get("configurable") or {}).get("turn_key")):
                update = await fn(state, config, **kwargs)
            if (watcher := current_observer()) is not None:
                report_turn_events(watcher, update)
            return update

        return weave.op(name=name)(observed)  # type: ignore[return-value]

    return wrap
