"""LangGraph Studio (``langgraph dev``): the companion graph served by the LangGraph API server.

``langgraph.json`` registers two things from this module:

* ``studio_app`` as the server's custom HTTP app. Its lifespan opens the memory layer,
  the chat model and the tools once per server process and closes them at shutdown.
* ``make_graph`` as the ``companion`` graph. The server calls a graph factory on every run
  and every state read, so the factory only hands back the graph compiled at start-up
  (opening the companion took 1.7 s cold and 0.15 s warm here; the server logs graph loads
  over 250 ms as errors).

Both are registered with module syntax (``app.studio:...``): a file path would make the
server import this file twice under different names, and the factory would not see the
app the lifespan ran on.

Threads belong to the API server: it replaces any checkpointer on a served graph with its
own (``langgraph dev``: in memory, pickled under ``./.langgraph_api/``), so the graph is
compiled without the Redis checkpointer the CLI chat uses. What the companion learns
(interventions, outcomes, state, reflections) still goes to the Redis memory layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from starlette.applications import Starlette

from app.companion import Companion
from app.runtime import resolve_redis_url
from app.settings import Settings

log = logging.getLogger(__name__)

class StudioNotStarted(RuntimeError):
    """The graph was asked for before the server's lifespan opened the companion."""


@asynccontextmanager
async def open_studio_graph(settings: Settings) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """Open memory, chat model and tools for ``settings`` and compile the graph without a
    checkpointer (the API server brings its own); close the memory layer afterwards."""
    # The dev server raises on blocking calls in its event loop: starting the embedded Redis
    # happens in a worker thread (Companion.build opens the outbox file in one too).
    settings = settings.model_copy(update={"redis_url": await asyncio.to_thread(resolve_redis_url, settings)})
    async with Companion.build(settings, checkpointer="none") as companion:
        log.info("studio: companion graph ready (chat model %s, namespace %s)",
                 type(companion.deps.chat_model).__name__, settings.memory.namespace)
        # The graph declares its context schema (Configuration): Studio shows a form with
        # ``user_id`` and ``seed``, and the server mirrors a run's context into ``configurable``.
        yield companion.graph


@asynccontextmanager
async def _lifespan(server: Starlette) -> AsyncIterator[None]:
    async with open_studio_graph(Settings()) as graph:
        server.state.companion_graph = graph
        try:
            yield
        finally:
            del server.state.companion_graph


studio_app = Starlette(lifespan=_lifespan)
"""The custom HTTP app of ``langgraph.json`` (no routes; it carries the companion's lifespan)."""


def make_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """The ``companion`` graph for the API server (opened by ``studio_app``'s lifespan).

    Input: ``{"messages": [...]}``; the person: ``config["configurable"]["user_id"]``.
    """
    graph: CompiledStateGraph[Any, Any, Any, Any] | None = getattr(studio_app.state, "companion_graph", None)
    if graph is None:
        raise StudioNotStarted(
            'the companion is opened by app.studio:studio_app; langgraph.json needs "http": '
            '{"app": "app.studio:studio_app"} next to "graphs": {"companion": "app.studio:make_graph"}, '
            "both in module syntax (a file path loads this module a second time)")
    return graph
