"""Choosing what to try: what usually suits a situation, corrected by what worked for this person.

Each intervention tool is an arm of a Thompson-sampling bandit whose Beta belief is

* a **prior** from general knowledge: how well the situation matches the tool's
  "when to use" description (embedding similarity, softmaxed over tools), plus a bonus
  for the tool the chat model proposes, worth ``prior_strength`` pseudo-observations;
* **this person's evidence near this situation**: every similar past intervention adds
  a success (completed, progress, re-engaged) or a failure (distracted, abandoned),
  weighted by how similar the situation was;
* **this person's evidence elsewhere**: their per-tool results over all situations, weakly;
* **other people's results in this kind of moment** (``memories.population``), once at least
  ``population_min_people`` people contributed, worth fewer pseudo-observations the more
  evidence of their own this person has.

Evidence ages: each past try weighs ``discount`` less for every newer try of the same tool
in a similar moment, ``discount_any`` less for every newer try of any tool there, and half
every ``half_life_days``, so what helped in September but
stopped in November loses its lead in a few tries, and a tool that failed long ago drifts
back to its prior and gets tried again.

The choice samples each belief and takes the best, so an untried but promising tool still
gets tried and a tool that keeps failing for this person stops being chosen, whichever
chat model writes the words. Hand-written because it is ~60 lines of arithmetic on data
we already fetched; a bandit library would add a dependency for less control.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from graphs.configuration import PolicySettings
from memories.interventions import Neighbor
from memories.outcomes import FAILED, SUCCEEDED
from memories.population import PoolCount
from memories.ranking import ToolStats, recency


class ArmBelief(BaseModel):
    """What the agent believes about one tool for this situation."""

    prior: float = Field(description="General prior success (relevance + model proposal).")
    similar_weight: float = Field(description="Weighted count of similar past tries by this person (aged).")
    similar_value: float = Field(description="Weighted success of those tries.")
    tries: int = Field(0, description="This person's recent settled tries of the tool in similar moments.")
    helped: int = Field(0, description="Of which helped.")
    elsewhere: int = Field(0, description="This person's settled tries of the tool in other situations.")
    pool_weight: float = Field(0.0, description="Pseudo-observations from other people (0 below the threshold).")
    pool_rate: float | None = Field(None, description="Other people's success rate in this kind of moment.")
    mean: float = Field(description="Posterior mean success.")
    sample: float = Field(description="The Thompson sample this turn.")


Evidence = Literal["you", "people", "general", "new"]


class Choice(BaseModel):
    """The tool picked for this turn and why."""

    tool: str = Field(description="The chosen intervention tool.")
    beliefs: dict[str, ArmBelief] = Field(description="Belief per candidate tool.")
    why: str = Field(description="One line a person can read: the evidence behind the choice.")
    evidence: Evidence = Field(description="Whose evidence decided: yours, other people's, general, or none.")
    from_memory: bool = Field(description="True when this person's history decided over the general prior.")

    @property
    def reason(self) -> str:
        """``tool: why``, for logs."""
        return f"{self.tool}: {self.why}"


TYPICAL_SUCCESS_VALUE = 0.7
#: Tries of a tool the "helped you n of m times" line counts (the most recent ones).
EXPLAINED_TRIES = 10
#: A similar past moment counts in "when you felt like this" from this similarity weight.
CLEARLY_SIMILAR = 0.5


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


def change_point(settled: Sequence[Neighbor], settings: PolicySettings) -> int | None:
    """Where what helps here changed, if it did: the index (in ``settled``, newest first) of the
    first try from before the change, or None.

    A change is a tool that had helped here more than once and whose newest
    ``change_failures`` tries here all failed. Then everything learnt before is stale, not just
    that tool's record: the tool that fails now is set aside by its own failures, and the others'
    old results (a tool that did not help in September may be the one that helps now) fade to
    ``change_discount``, so the prior gets them tried again. Detecting the change, as
    change-point bandits do, recovers faster than a discount fast enough to forget it would,
    and costs nothing while nothing changes."""
    streak: dict[str, int] = {}
    oldest_failure: dict[str, int] = {}
    seen: set[str] = set()
    for i, n in enumerate(settled):
        tool = n.tool_name
        if tool in seen or similarity_weight(n.similarity, settings) < CLEARLY_SIMILAR:
            continue
        if n.outcome in FAILED:
            streak[tool] = streak.get(tool, 0) + 1
            oldest_failure[tool] = i
            continue
        seen.add(tool)  # its newest success: the streak of failures (if any) ends here
        if streak.get(tool, 0) >= settings.change_failures:
            helped = sum(1 for m in settled[i:] if m.tool_name == tool and m.outcome in SUCCEEDED
                         and similarity_weight(m.similarity, settings) >= CLEARLY_SIMILAR)
            if helped >= 2:
                return oldest_failure[tool] + 1  # everything older than the first failure of the run
    return None


def aged(neighbors: Sequence[Neighbor], tools: Iterable[str], settings: PolicySettings, half_life_days: float
         ) -> list[tuple[float, float, Neighbor]]:
    """The settled similar tries the choice learns from, newest first, as (weight, similarity
    weight, try). Evidence ages by time (``half_life_days``) and by what came after it
    (discounted Thompson sampling): a factor ``discount`` for every newer try of the same tool
    in a similar moment, so a tool that stopped working loses its lead within a few tries
    whatever the calendar says, and a milder ``discount_any`` for every newer try of any tool
    there, so old failures slowly fade back to the prior and the tool gets tried again, without
    every tool set aside being re-explored after a handful of turns."""
    known = set(tools)
    settled = sorted((n for n in neighbors if n.tool_name in known and (n.outcome in SUCCEEDED or n.outcome in FAILED)
                      and similarity_weight(n.similarity, settings) > 0), key=lambda n: n.age_s)
    found, newer = [], 0.0
    same = dict.fromkeys(known, 1.0)  # what newer tries of the tool left of an older one's weight
    cut = change_point(settled, settings)
    for i, n in enumerate(settled):
        closeness = similarity_weight(n.similarity, settings)
        stale = settings.change_discount if cut is not None and i >= cut else 1.0
        found.append((settings.evidence_weight * closeness * recency(n.age_s, half_life_days) * same[n.tool_name]
                      * settings.discount_any ** newer * stale, closeness, n))
        newer += closeness
        factor = settings.discount_failed if n.outcome in FAILED else settings.discount
        same[n.tool_name] *= factor ** closeness
    # The k heaviest: a fixed count rather than a similarity cut-off alone, because short
    # utterances of different situations are often as similar to each other (MiniLM ~0.2-0.35)
    # as paraphrases of the same one; the heaviest are mostly recent tries of the same situation.
    keep = sorted(found, key=lambda f: f[0], reverse=True)[: settings.neighbors_k]
    return sorted(keep, key=lambda f: f[2].age_s)


def pool_weight(pool: PoolCount | None, own_weight: float, settings: PolicySettings) -> float:
    """Pseudo-observations other people's results are worth: none until ``population_min_people``
    people contributed, growing with their tries up to ``population_strength``, and shrinking
    as this person's own evidence in such moments grows (their own outweighs the pool)."""
    if pool is None or not settings.use_population or pool.people < settings.population_min_people:
        return 0.0
    return settings.population_strength * pool.tries / (pool.tries + 5) * 2.0 / (2.0 + own_weight)


def explain(tool: str, belief: ArmBelief, *, best_prior: str) -> tuple[str, Evidence]:
    """The one line a person reads: whose evidence the choice stands on."""
    if belief.tries and belief.helped:
        times = "time" if belief.tries == 1 else "times"
        return f"helped you {belief.helped} of {belief.tries} {times} when you felt like this", "you"
    if belief.pool_weight > 0 and belief.pool_rate is not None and belief.pool_rate >= 0.5:
        return "helps most people in moments like this", "people"
    if belief.tries:
        return "trying it once more: it has not helped you yet in moments like this", "new"
    if belief.pool_weight > 0 and belief.pool_rate is not None:
        return "helps some people in moments like this", "people"
    if tool == best_prior:
        return "usually suits a moment like this", "general"
    return "trying something new", "new"


def choose_tool(
    *,
    relevance: Mapping[str, float],
    neighbors: Sequence[Neighbor],
    rates: Mapping[str, ToolStats],
    settings: PolicySettings,
    rng: random.Random,
    proposal: str | None = None,
    half_life_days: float = 30.0,
    population: Mapping[str, PoolCount] | None = None,
) -> Choice:
    """Pick one tool among ``relevance``'s keys (see the module docstring)."""
    if not relevance:
        raise ValueError("choose_tool needs at least one candidate tool")
    priors = prior_means(relevance, settings, proposal)
    near: dict[str, list[float]] = {t: [0.0, 0.0, 0.0] for t in priors}  # weight, value, raw count
    recent: dict[str, list[bool]] = {t: [] for t in priors}  # clearly similar tries, newest first
    for weight, closeness, n in aged(neighbors, priors, settings, half_life_days):
        value = 1.0 if n.outcome in SUCCEEDED else 0.0
        near[n.tool_name][0] += weight
        near[n.tool_name][1] += weight * value
        near[n.tool_name][2] += 1
        if closeness >= CLEARLY_SIMILAR and len(recent[n.tool_name]) < EXPLAINED_TRIES:
            recent[n.tool_name].append(value > 0)
    # Tries retrieved near this situation (however faint) are not "elsewhere": the rest are.
    retrieved = Counter(n.tool_name for n in neighbors if n.outcome in SUCCEEDED or n.outcome in FAILED)
    own_weight = sum(w for w, _, _ in near.values())
    beliefs: dict[str, ArmBelief] = {}
    for tool, prior in priors.items():
        weight, value, count = near[tool]
        stats = rates.get(tool)
        # Outcomes elsewhere: the tool's tries not counted as similar here, at the tool's overall
        # rate (outcome values average ~0.7 for a success, hence the rescaling to a success share).
        other_n = max((stats.settled if stats else 0) - max(int(count), retrieved[tool]), 0)
        overall = min(stats.value_sum / stats.settled / TYPICAL_SUCCESS_VALUE, 1.0) if stats and stats.settled else 0.0
        # Capped at one pseudo-observation: what works in one kind of moment says little about another.
        elsewhere = min(settings.global_weight * other_n, 1.0)
        pool = (population or {}).get(tool)
        pooled = pool_weight(pool, own_weight, settings)
        pool_rate = pool.rate if pool is not None and pooled > 0 else None
        alpha = settings.prior_strength * prior + value + elsewhere * overall + pooled * (pool_rate or 0.0)
        beta = (settings.prior_strength * (1 - prior) + (weight - value) + elsewhere * (1 - overall)
                + pooled * (1 - (pool_rate or 0.0)))
        alpha, beta = max(alpha, 1e-3), max(beta, 1e-3)
        beliefs[tool] = ArmBelief(prior=prior, similar_weight=weight, similar_value=value,
                                  tries=len(recent[tool]), helped=sum(recent[tool]), elsewhere=other_n,
                                  pool_weight=pooled, pool_rate=pool_rate, mean=alpha / (alpha + beta),
                                  sample=rng.betavariate(alpha * settings.sharpness, beta * settings.sharpness))
    tool = max(beliefs, key=lambda t: beliefs[t].sample)
    best_prior = max(priors, key=lambda t: priors[t])
    chosen = beliefs[tool]
    why, evidence = explain(tool, chosen, best_prior=best_prior)
    # "From memory" = this person's history, not chance, made the difference.
    from_memory = own_weight >= 0.5 and (chosen.similar_weight >= 0.5 or tool != best_prior)
    return Choice(tool=tool, beliefs=beliefs, why=why, evidence=evidence, from_memory=from_memory)
