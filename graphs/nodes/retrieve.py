"""Step 2, retrieve few-shot: this person's similar past interventions, ranked by what worked.

The message was embedded once, by ``understand``; the same vector (from the embedder's
in-process cache) serves the few-shot search and the tools' relevance.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.common import MEMORY_OFFLINE_NOTICE, ms_since, subject_text
from graphs.situations import SituationSpace
from graphs.state import CompanionState
from graphs.tracing import traced
from graphs.turn import FewShot, PolicyEvidence
from memories.errors import MemoryUnavailable
from memories.interventions import InterventionMemory, render_examples
from memories.records import MAX_TEXT_CHARS

log = logging.getLogger(__name__)


async def situation_space(deps: CompanionDeps, interventions: InterventionMemory) -> SituationSpace:
    """The policy's notion of "the same kind of moment": the pool's kinds of moment and the
    tools' descriptions as anchors (built once per companion)."""
    if deps.situations is None:
        centroids = await interventions.population.clusters.centroids()
        deps.situations = SituationSpace([*centroids.values(), *deps.relevance.matrix],
                                         deps.settings.policy.profile_weight)
    return deps.situations


@traced("retrieve_few_shot")
async def retrieve_few_shot(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Fetch similar past interventions and the tools' relevance for the message."""
    start = time.perf_counter()
    user = Configuration.from_runnable_config(config).user_id
    message = subject_text(state)
    empty: dict[str, Any] = {"few_shot": [], "few_shot_prompt": "", "relevance": {}, "neighbors": PolicyEvidence()}
    if not message:
        return {**empty, "timings": {"retrieve_few_shot": ms_since(start)}}
    vector = await deps.memory.embeddings.aembed_query(message[:MAX_TEXT_CHARS])  # cached: understand embedded it
    relevance = await deps.relevance.scores(vector)
    update: dict[str, Any] = {**empty, "relevance": relevance}
    interventions = deps.memory.registry.get(InterventionMemory)
    if interventions is not None and not state.get("degraded"):
        policy = deps.settings.policy
        try:
            found = await interventions.neighborhood(user, vector, contrast=True, pool=policy.pool,
                                                     population=policy.use_population,
                                                     with_vectors=policy.profile_weight > 0)
        except MemoryUnavailable as exc:
            log.warning("retrieve_few_shot: memory unavailable (%s)", exc)
            update.update(degraded=True, notice=MEMORY_OFFLINE_NOTICE)
        else:
            similar = [n.similarity for n in found.neighbors]
            if found.vectors is not None:
                space = await situation_space(deps, interventions)
                similar = [round(float(s), 4) for s in space.similarity(vector, found.vectors)]
            update.update(
                few_shot=[FewShot.of(e) for e in found.examples],
                few_shot_prompt=render_examples(found.examples),
                # Only the tries the choice can learn from (graphs.policy.similarity_weight > 0), each
                # with the situation similarity the policy weighs (not the raw embedding similarity).
                neighbors=PolicyEvidence(
                    near=[n._replace(similarity=s) for n, s in zip(found.neighbors, similar, strict=True)
                          if s > policy.similar_from],
                    rates=found.rates, cluster=found.cluster, population=found.population),
                used_memory_ids=[e.intervention.id for e in found.examples],
            )
    return {**update, "timings": {"retrieve_few_shot": ms_since(start)}}
