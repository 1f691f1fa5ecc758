"""Weave tracing: every node and memory operation is a weave op (``traced``); tracing is on
only when ``WANDB_API_KEY`` and a project name are set. Otherwise ops run untraced: no
prompt, no network, no delay."""

from __future__ import annotations

import logging
import os

from memories.tracing import traced, weave

__all__ = ["init_tracing", "traced"]
log = logging.getLogger(__name__)


def init_tracing(project: str | None) -> bool:
    """Start weave tracing when a W&B key and a project are configured; returns whether it is on."""
    if not (os.environ.get("WANDB_API_KEY") and project):
        return False
    os.environ.pop("WEAVE_DISABLED", None)
    try:
        weave.init(project)
    except Exception as exc:  # tracing must never stop a session
        log.warning("weave tracing is off: %s", exc)
        return False
    log.info("weave tracing on: project %s", project)
    return True
