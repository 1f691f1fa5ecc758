"""How an intervention turned out, and what each outcome is worth to the learning.

Its own module because every room speaks of outcomes (the graph settles them, the policy
and the ranking learn from them, the page and the exports show them) while only the
few-shot ranking needs the ranking's weights.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How an intervention turned out."""

    PENDING = "pending"
    TASK_COMPLETED = "task_completed"
    TASK_PROGRESS = "task_progress"
    RE_ENGAGED = "re_engaged"
    DISTRACTED = "distracted"
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"


#: How much each settled outcome counts as success (None: tells nothing yet).
OUTCOME_VALUE: dict[Outcome, float | None] = {
    Outcome.PENDING: None,
    Outcome.UNKNOWN: None,
    Outcome.TASK_COMPLETED: 1.0,
    Outcome.TASK_PROGRESS: 0.75,
    Outcome.RE_ENGAGED: 0.6,
    Outcome.DISTRACTED: 0.1,
    Outcome.ABANDONED: 0.0,
}
FAILED = frozenset({Outcome.DISTRACTED, Outcome.ABANDONED})
SUCCEEDED = frozenset({Outcome.TASK_COMPLETED, Outcome.TASK_PROGRESS, Outcome.RE_ENGAGED})
