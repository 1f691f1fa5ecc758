"""Composition: turn :class:`Settings` into a running companion (memory, tools, chat model,
graph with its Redis checkpointer): ``async with Companion.build(settings) as companion``, then
``companion.session(user)``. Every entry point and the test fixtures open one this way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.redis.ashallow import AsyncShallowRedisSaver
from langgraph.graph.state import CompiledStateGraph
from redis.exceptions import ResponseError
from redisvl.exceptions import RedisSearchError

from app.accounts import AccountStore
from app.audit import AuditLog
from app.person_data import PersonData
from app.runtime import open_app_memory
from app.settings import Settings
from graphs.deps import CompanionDeps
from graphs.graph import build_companion_graph
from graphs.models.capabilities import capabilities_of
from graphs.models.factory import ChatProvider, build_chat_model
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
    """A ready companion: its dependencies and the compiled graph. Every entry point (the CLI,
    the web server, Studio, the evaluations, the benchmarks, the test fixtures) opens one with
    :meth:`build` and talks through :meth:`session`."""

    deps: CompanionDeps
    graph: CompiledStateGraph[Any, Any, Any, Any]

    @property
    def stack(self) -> MemoryStack:
        """The memory layer under the companion."""
        return self.deps.memory

    def session(self, user_id: str, *, seed: int | str | None = None) -> CompanionSession:
        """A session for one person (call ``await session.open()`` or just ``send``)."""
        return CompanionSession(self.graph, self.deps, user_id, seed=None if seed is None else str(seed))

    def person_data(self, *, accounts: AccountStore | None = None, audit: AuditLog | None = None) -> PersonData:
        """Export, show, correct and forget one person's data, with this companion's stores: its
        checkpointer (conversations) and outbox (writes still queued for them). The sign-in stores
        default to this namespace's, so forgetting someone also deletes their account and log."""
        client, namespace = self.stack.client, self.stack.registry.backend.settings.namespace
        return PersonData(self.stack.registry, self.deps.store, checkpointer=self.graph.checkpointer,
                          accounts=accounts or AccountStore(client, namespace),
                          audit=audit or AuditLog(client, namespace), outbox=self.deps.outbox)

    @classmethod
    @asynccontextmanager
    async def build(cls, settings: Settings, *, chat_provider: ChatProvider | None = None,
                    chat_model: BaseChatModel | None = None, checkpointer: Literal["redis", "none"] = "redis"
                    ) -> AsyncIterator[Companion]:
        """Open memory, build the chat model and tools, compile the graph; close everything after.

        The entry point of every process (the CLI, ``serve``, Studio, ``eval run``, the load and
        chaos benchmarks). ``checkpointer="none"``: the graph is compiled without one (LangGraph's
        API server brings its own). This process's outbox is the data dir's, adopting what earlier
        processes left (replayed now). With tracing on, the memory statistics go to Weave every
        ``weave_stats_interval_s`` and at close."""
        tracing = init_tracing(settings.weave_project)
        async with contextlib.AsyncExitStack() as closing:
            stack = await open_app_memory(settings)
            closing.push_async_callback(stack.aclose)
            model = chat_model or build_chat_model(
                chat_provider or settings.chat_provider, google_api_key=settings.google_key,
                gemini_model=settings.chat_model)
            # The data dir is touched in a thread: LangGraph's dev server refuses blocking calls in its loop.
            outbox = await asyncio.to_thread(open_outbox, settings)
            closing.callback(outbox.close)
            companion = await cls.assemble(stack, settings, chat_model=model, outbox=outbox,
                                           checkpointer=checkpointer)
            if tracing:
                stats = asyncio.create_task(log_memory_stats(stack.registry, settings.weave_stats_interval_s),
                                            name="memory-stats")
                closing.push_async_callback(_stop_stats, stats, stack.registry)
            yield companion

    @classmethod
    async def assemble(cls, stack: MemoryStack, settings: Settings, *, chat_model: BaseChatModel,
                       outbox: Outbox | None = None, checkpointer: Literal["redis", "none"] = "redis") -> Companion:
        """The composition step of :meth:`build`, on a memory layer the caller owns (a test
        fixture's, an evaluation's or a benchmark's scratch namespace). It opens nothing that
        needs closing: without ``outbox``, writes wait in an in-memory queue."""
        deps = await build_deps(stack, chat_model, settings, outbox=outbox)
        await replay_leftovers(deps)
        saver = await checkpointer_for(stack) if checkpointer == "redis" else None
        return cls(deps=deps, graph=build_companion_graph(deps, checkpointer=saver))


async def _stop_stats(stats: asyncio.Task[None], registry: MemoryRegistry) -> None:
    stats.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stats
    await log_memory_stats_once(registry)


async def build_deps(
    stack: MemoryStack, chat_model: BaseChatModel, settings: Settings, *, outbox: Outbox | None = None
) -> CompanionDeps:
    """Wire tools, the understanding step and tool relevance onto an open memory layer."""
    store = CoachingStore(stack.client, stack.registry.backend.settings.namespace)
    # Only a model that says it writes well gets the tools' writing and the second reading
    # (graphs.models.capabilities); the rest get the tools' rule-based writers.
    can = capabilities_of(chat_model)
    tools_model = chat_model if can.writes else None
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
                         reword_replies=can.rewords, understanding_model=tools_model,
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
