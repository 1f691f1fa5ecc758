"""What the coaching tools run against, and the catalogue the agent chooses from.

CONTRACT (issue 3): ``tools.build_tools(ctx)`` returns the 14 LangChain tools bound to
``ctx``. Every tool reads the user from ``config["configurable"]["user_id"]`` (injected
``RunnableConfig``), keeps its state in Redis through :class:`tools.store.CoachingStore`,
and returns ``(content, artifact)`` (``response_format="content_and_artifact"``):
``content`` is a short plain-language result the reply model can use, ``artifact`` a
dict with at least ``{"event": str}`` that the record-outcome step reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langchain_core.language_models import BaseChatModel

from memories.registry import MemoryRegistry

if TYPE_CHECKING:
    from tools.store import CoachingStore
    from tools.writes import WriteQueue


@dataclass(frozen=True)
class ToolContext:
    """Everything the coaching tools need: their Redis store, the memory elements they
    write to, an optional chat model for generated text, and a clock (tests move it)."""

    store: CoachingStore
    memory: MemoryRegistry
    chat_model: BaseChatModel | None = None
    clock: Callable[[], float] = field(default=time.time)
    #: Longest wait for ``chat_model`` before a tool falls back to its rule-based text.
    #: Pass a chat model only if it does structured output well and fast (Gemini): the
    #: offline SmolLM2-135M took 12-60 s and mostly failed or looped (measured), so the
    #: rules are the better choice offline.
    model_timeout_s: float = 10.0
    #: Where tool-state writes wait while Redis is down (the graph's outbox); None: they fail.
    queue: WriteQueue | None = None
