"""How few-shot retrieval ranks a user's past interventions for a new situation.

score = w_sim * similarity + w_rate * success_rate(tool) + w_outcome * outcome_value
        + w_recency * 0.5 ** (age / half_life)

``success_rate`` is this user's observed rate for the intervention's tool,
smoothed towards 0.5 by a weak prior so one lucky try does not dominate.
Failed interventions are never offered as examples to copy; the most similar
one may be shown separately as a contrast.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field

from memories.config import RankingWeights
from memories.outcomes import OUTCOME_VALUE, Outcome

NEUTRAL = 0.5
PRIOR_STRENGTH = 2.0
NO_TOOL = "none"


class ToolStats(BaseModel):
    """A user's observed results with one kind of intervention (a tool, or ``none``)."""

    tool_name: str = Field(description="Tool name, or 'none' for a plain reply.")
    settled: int = Field(0, ge=0, description="Interventions with a known outcome.")
    value_sum: float = Field(0.0, ge=0, description="Sum of their outcome values.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def success_rate(self) -> float:
        """Outcome value averaged with a weak 0.5 prior."""
        return (self.value_sum + PRIOR_STRENGTH * NEUTRAL) / (self.settled + PRIOR_STRENGTH)


def recency(age_s: float, half_life_days: float) -> float:
    """1.0 for now, 0.5 after one half-life."""
    return 0.5 ** (max(age_s, 0.0) / (half_life_days * 86400.0))


def score(
    *, similarity: float, success_rate: float, outcome: Outcome, age_s: float, weights: RankingWeights
) -> tuple[float, float]:
    """The combined score and the recency factor used in it."""
    rec = recency(age_s, weights.recency_half_life_days)
    value = OUTCOME_VALUE[outcome]
    total = (
        weights.similarity * similarity
        + weights.success_rate * success_rate
        + weights.outcome * (NEUTRAL if value is None else value)
        + weights.recency * rec
    )
    return total, rec
