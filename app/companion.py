"""Composition: turn :class:`Settings` into a running companion (memory, tools, chat model,
graph with its Redis checkpointer). Every entry point opens one of these."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.redis.ashallow import AsyncShallowRedisSaver
from langgraph.graph.state import CompiledStateGraph
from redis.exceptions import ResponseError
from redisvl.exceptions import RedisSearchError

from app.runtime import open_app_memory
from app.settings import Settings
from graphs.deps import CompanionDeps
from graphs.graph import build_companion_graph
from graphs.models.factory import ChatProvider, build_chat_model
from graphs.models.offline import LocalChatModel
from graphs.models.template import TemplateChatModel
from graphs.outbox import Outbox
from graphs.relevance import ToolRelevance
from graphs.session import CompanionSession
from graphs.tracing import init_tracing
from graphs.understanding.reader import UnderstandingReader
from memories.embeddings import LocalMiniLMEmbeddings
from memories.errors import MemoryLayerError, MemoryUnavailable
from memories.registry import MemoryRegistry
from memories.stack import MemoryStack
from memories.stats import memory_stats
from tools import build_tools
from tools.context import ToolContext
from tools.store import CoachingStore

log = logging.getLogger(__name__)


@dataclass
class Companion:
    """A ready companion: its dependencies and the compiled, checkpointed graph."""

    deps: CompanionDeps
    graph: CompiledStateGraph[Any, Any, Any, Any]

    def session(self, user_id: str, *, seed: int | str | None = None) -> CompanionSession:
        """A session for one person (call ``await session.open()`` or just ``send``)."""
        return CompanionSession(self.graph, self.deps, user_id, seed=None if seed is None else str(seed))


async def build_deps(
    stack: MemoryStack, chat_model: BaseChatModel, settings: Settings, *, outbox: Outbox | None = None
) -> CompanionDeps:
    """Wire tools, the understanding step and tool relevance onto an open memory layer."""
    store = CoachingStore(stack.client, stack.registry.backend.settings.namespace)
    # The 135M offline model writes step lists and reframes badly and slowly (12-60 s, often
    # invalid); the tools' rule-based writers are better, so only a capable model gets them.
    tools_model = None if isinstance(chat_model, LocalChatModel | TemplateChatModel) else chat_model
    outbox = outbox if outbox is not None else Outbox(limit=settings.companion.outbox_limit)
    tools = build_tools(ToolContext(store=store, memory=stack.registry, chat_model=tools_model, queue=outbox))
    understanding = UnderstandingReader()
    if isinstance(stack.embeddings.inner, LocalMiniLMEmbeddings):
        # The encoder's session computes the plain retrieval embedding too (bit-identical):
        # one MiniLM in memory, not two. With Gemini embeddings it runs MiniLM on its own.
        stack.embeddings.inner = understanding.encoder.local
    relevance = ToolRelevance(stack.embeddings)
    await relevance.setup()
    return CompanionDeps(memory=stack, store=store, tools=tools, chat_model=chat_model, understanding=understanding,
                         relevance=relevance, settings=settings.companion,
                         reword_replies=not isinstance(chat_model, LocalChatModel), understanding_model=tools_model,
                         outbox=outbox)


async def checkpointer_for(stack: MemoryStack) -> AsyncShallowRedisSaver:
    """The Redis checkpointer on the memory layer's client (its indexes set up).

    The shallow saver keeps each thread's latest checkpoint only: a session resumes from
    it after a restart, and a turn costs one small write instead of a growing history
    (measured: ~35 ms less per turn). Time travel is what Studio's own server offers.
    """
    saver = AsyncShallowRedisSaver(redis_client=stack.client)
    for attempt in range(3):
        try:
            await saver.asetup()  # without setup the saver fails later with an AttributeError (NOTES)
            break
        except (RedisSearchError, ResponseError) as exc:
            # Another worker created an index between redisvl's exists check and its create:
            # run setup again (existing indexes are skipped, the rest created).
            if "already exists" not in str(exc).lower() or attempt == 2:
                raise
    return saver


@asynccontextmanager
async def open_companion(
    settings: Settings, *, chat_provider: ChatProvider | None = None, chat_model: BaseChatModel | None = None
) -> AsyncIterator[Companion]:
    """Open memory, build the chat model and tools, compile the graph; close everything after.
    With tracing on, the memory statistics go to Weave every ``weave_stats_interval_s`` and at close."""
    tracing = init_tracing(settings.weave_project)
    stack = await open_app_memory(settings)
    try:
        model = chat_model or build_chat_model(
            chat_provider or settings.chat_provider, google_api_key=settings.google_key,
            gemini_model=settings.chat_model)
        outbox = open_outbox(settings)
        try:
            deps = await build_deps(stack, model, settings, outbox=outbox)
            await replay_leftovers(deps)
            graph = build_companion_graph(deps, checkpointer=await checkpointer_for(stack))
            stats = asyncio.create_task(log_memory_stats(stack.registry, settings.weave_stats_interval_s),
                                        name="memory-stats") if tracing else None
            try:
                yield Companion(deps=deps, graph=graph)
            finally:
                if stats is not None:
                    stats.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await stats
                    await log_memory_stats_once(stack.registry)
        finally:
            outbox.close()
    finally:
        await stack.aclose()


async def log_memory_stats_once(registry: MemoryRegistry) -> None:
    """The memory statistics as one weave call (``memory_stats`` is an op: tracing logs it)."""
    try:
        await memory_stats(registry)
    except MemoryLayerError as exc:  # statistics are worth a line, never a failure
        log.info("memory statistics not logged: %s", exc)


async def log_memory_stats(registry: MemoryRegistry, interval_s: float) -> None:
    """Log the memory statistics to Weave now and every ``interval_s`` (until cancelled)."""
    while True:
        await log_memory_stats_once(registry)
        await asyncio.sleep(interval_s)


def open_outbox(settings: Settings) -> Outbox:
    """This process's outbox in ``<data dir>/outbox/`` (adopting what earlier processes left)."""
    return Outbox(limit=settings.companion.outbox_limit, directory=settings.data_dir / "outbox")


async def replay_leftovers(deps: CompanionDeps) -> None:
    """Write out what an earlier process left queued, now rather than at someone's next turn."""
    if not len(deps.outbox):
        return
    try:
        done = await deps.outbox.flush(deps.memory.registry)
    except MemoryUnavailable:
        done = 0
    log.info("outbox: replayed %d of the writes earlier processes left; %d still queued", done, len(deps.outbox))
