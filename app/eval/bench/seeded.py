"""A companion on a scratch namespace with a person's synthetic interventions already stored,
on a throwaway server: the starting point of the graph and voice benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.companion import Companion
from app.eval.bench.common import scratch_redis
from app.eval.bench.synthetic import synthetic_interventions
from app.settings import Settings
from graphs.models.template import TemplateChatModel
from memories.embeddings import LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from memories.stack import MemoryStack, open_memory


@asynccontextmanager
async def seeded_stack(url: str, settings: Settings, *, prefix: str, user: str, interventions: int,
                       say: Callable[..., Any]) -> AsyncIterator[MemoryStack]:
    """Open memory in a fresh ``prefix…`` namespace and store ``interventions`` for ``user``."""
    embedder = LocalMiniLMEmbeddings()
    memory = settings.memory.model_copy(update={"namespace": f"{prefix}{uuid.uuid4().hex[:8]}"})
    stack = await open_memory(url, memory, base_embeddings=(embedder, embedder.model_id, embedder.dims),
                              socket_timeout_s=30.0)
    try:
        store = stack.registry.get(InterventionMemory)
        assert store is not None
        say(f"storing {interventions} interventions for {user} ...")
        rows = synthetic_interventions(interventions)
        for start in range(0, len(rows), 500):
            await store.record_many(user, [{k: v for k, v in r.items() if k != "user_id"}
                                           for r in rows[start:start + 500]])
        yield stack
    finally:
        await stack.aclose()


@asynccontextmanager
async def seeded_companion(settings: Settings, *, prefix: str, user: str, interventions: int,
                           say: Callable[..., Any]) -> AsyncIterator[tuple[Companion, str]]:
    """The template-model companion on a :func:`seeded_stack` of a throwaway server (or
    ``REDIS_URL``'s, in a scratch namespace); yields it and where Redis is."""
    with scratch_redis(settings) as (url, where):
        async with seeded_stack(url, settings, prefix=prefix, user=user, interventions=interventions,
                                say=say) as stack:
            yield await Companion.assemble(stack, settings, chat_model=TemplateChatModel()), where
