"""Choosing what to try: what usually suits a situation, corrected by what worked for this person.

Each intervention tool is an arm of a Thompson-sampling bandit whose Beta belief is

* a **prior** from general knowledge: how well the situation matches the tool's
  "when to use" description (embedding similarity, softmaxed over tools), plus a bonus
  for the tool the chat model proposes, worth ``prior_strength`` pseudo-observations;
* **this person's evidence near this situation**: every similar past intervention adds
  a success (completed, progress, re-engaged) or a failure (distracted, abandoned),
  weighted by how similar the situation was;
* **this person's evidence elsewhere**: their per-tool results over all situations, weakly.

The choice samples each belief and takes the best, so an untried but promising tool still
gets tried and a tool that keeps failing for this person stops being chosen, whichever
chat model writes the words. Hand-written because it is ~60 lines of arithmetic on data
we already fetched; a bandit library would add a dependency for less control.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from graphs.configuration import PolicySettings
from memories.interventions import Neighbor
from memories.ranking import FAILED, SUCCEEDED, ToolStats, recency


class ArmBelief(BaseModel):
    """What the agent believes about one tool for this situation."""

    prior: float = Field(description="General prior success (relevance + model proposal).")
    similar_weight: float = Field(description="Weighted count of similar past tries by this person.")
    similar_value: float = Field(description="Weighted success of those tries.")
    elsewhere: int = Field(0, description="This person's settled tries of the tool in other situations.")
    mean: float = Field(description="Posterior mean success.")
    sample: float = Field(description="The Thompson sample this turn.")


class Choice(BaseModel):
    """The tool picked for this turn and why."""

    tool: str = Field(description="The chosen intervention tool.")
    beliefs: dict[str, ArmBelief] = Field(description="Belief per candidate tool.")
    reason: str = Field(description="One line a person can read: why this tool.")
    from_memory: bool = Field(description="True when this person's history decided over the general prior.")


TYPICAL_SUCCESS_VALUE = 0.7


def prior_means(relevance: Mapping[str, float], settings: PolicySettings, proposal: str | None = None
                ) -> dict[str, float]:
    """General prior success per tool from relevance scores (softmax, scaled to floor..floor+span)."""
    if not relevance:
        return {}
    top = max(relevance.values())
    weights = {t: math.exp((r - top) / settings.relevance_temperature) for t, r in relevance.items()}
    means = {t: settings.prior_floor + settings.prior_span * w for t, w in weights.items()}
    if proposal in means:
        means[proposal] = min(0.95, means[proposal] + settings.proposal_bonus)
    return means


def similarity_weight(similarity: float, settings: PolicySettings) -> float:
    """0 below ``similar_from``, 1 from ``similar_full``, linear in between."""
    span = settings.similar_full - settings.similar_from
    return min(max((similarity - settings.similar_from) / span, 0.0), 1.0)


def turn_rng(*parts: object) -> random.Random:
    """A random source seeded by the turn's identity: the same turn replays the same choice."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose_tool(
    *,
    relevance: Mapping[str, float],
    neighbors: Sequence[Neighbor],
    rates: Mapping[str, ToolStats],
    settings: PolicySettings,
    rng: random.Random,
    proposal: str | None = None,
    half_life_days: float = 7.0,
) -> Choice:
    """Pick one tool among ``relevance``'s keys (see the module docstring)."""
    if not relevance:
        raise ValueError("choose_tool needs at least one candidate tool")
    priors = prior_means(relevance, settings, proposal)
    near: dict[str, list[float]] = {t: [0.0, 0.0, 0.0] for t in priors}  # weight, value, raw count
    # The k most similar settled tries: the person's own history of *this* kind of moment.
    # A fixed count rather than a similarity cut-off alone, because short utterances of
    # different situations are often as similar to each other (MiniLM ~0.2-0.35) as
    # paraphrases of the same one; the nearest tries are mostly the same situation.
    settled = sorted((n for n in neighbors if n.tool_name in near and (n.outcome in SUCCEEDED or n.outcome in FAILED)),
                     key=lambda n: n.similarity, reverse=True)[: settings.neighbors_k]
    for n in settled:
        value = 1.0 if n.outcome in SUCCEEDED else 0.0
        w = similarity_weight(n.similarity, settings) * recency(n.age_s, half_life_days)
        near[n.tool_name][0] += w
        near[n.tool_name][1] += w * value
        near[n.tool_name][2] += 1
    beliefs: dict[str, ArmBelief] = {}
    for tool, prior in priors.items():
        weight, value, count = near[tool]
        stats = rates.get(tool)
        # Outcomes elsewhere = the tool's overall results minus those counted as similar here.
        # Outcomes elsewhere: the tool's tries not counted as similar here, at the tool's overall
        # rate (outcome values average ~0.7 for a success, hence the rescaling to a success share).
        other_n = max((stats.settled if stats else 0) - count, 0)
        overall = min(stats.value_sum / stats.settled / TYPICAL_SUCCESS_VALUE, 1.0) if stats and stats.settled else 0.0
        # Capped at one pseudo-observation: what works in one kind of moment says little about another.
        elsewhere = min(settings.global_weight * other_n, 1.0)
        alpha = settings.prior_strength * prior + value + elsewhere * overall
        beta = settings.prior_strength * (1 - prior) + (weight - value) + elsewhere * (1 - overall)
        alpha, beta = max(alpha, 1e-3), max(beta, 1e-3)
        beliefs[tool] = ArmBelief(prior=prior, similar_weight=weight, similar_value=value, elsewhere=other_n,
                                  mean=alpha / (alpha + beta),
                                  sample=rng.betavariate(alpha * settings.sharpness, beta * settings.sharpness))
    tool = max(beliefs, key=lambda t: beliefs[t].sample)
    best_prior = max(priors, key=lambda t: priors[t])
    chosen = beliefs[tool]
    history = sum(b.similar_weight for b in beliefs.values())
    if chosen.similar_weight >= 0.5:
        rate = chosen.similar_value / chosen.similar_weight
        reason = f"{tool}: helped you {rate:.0%} of the time in moments like this"
    elif tool == best_prior:
        reason = f"{tool}: usually suits a moment like this"
    else:
        reason = f"{tool}: not tried in moments like this yet; worth a try"
    # "From memory" = this person's history, not chance, made the difference.
    from_memory = history >= 0.5 and (chosen.similar_weight >= 0.5 or tool != best_prior)
    return Choice(tool=tool, beliefs=beliefs, reason=reason, from_memory=from_memory)
