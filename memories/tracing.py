"""Weave ops for memory operations (and, via ``graphs.tracing``, for graph nodes).

Importing this module sets two defaults before weave is imported: weave is disabled
unless ``WANDB_API_KEY`` is set (so it never prompts or touches the network), and its
crash reporting to a third party is off unless the person opts in with
``WANDB_ERROR_REPORTING=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
if not os.environ.get("WANDB_API_KEY"):
    os.environ.setdefault("WEAVE_DISABLED", "true")

import weave  # noqa: E402  (the environment above must be set first)

F = TypeVar("F", bound=Callable[..., Any])


def traced(name: str) -> Callable[[F], F]:
    """Mark a function as a weave op called ``name`` (untraced, a few µs, until weave.init)."""

    def wrap(fn: F) -> F:
        return weave.op(name=name)(fn)  # type: ignore[return-value]

    return wrap
