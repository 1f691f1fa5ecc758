"""What one message is: the acts a coach tells apart, and the typed reading of a message.

The understanding step (``graphs.nodes.understand``) fills an :class:`Understanding` for
every text turn; it is in the graph state and in ``TurnResult``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Act(StrEnum):
    """What a message does (the corpus README defines each with examples)."""

    GREETING = "greeting"
    STRUGGLE = "struggle"
    PROGRESS = "progress"
    OUTCOME = "outcome"
    REQUEST = "request"
    QUESTION = "question"
    OFF_TOPIC = "off_topic"
    GOODBYE = "goodbye"
    CRISIS = "crisis"


class Sign(StrEnum):
    """What a message says about the last suggestion."""

    HELPED = "helped"
    NOT_HELPED = "not_helped"
    UNCLEAR = "unclear"
    NONE = "none"


class Request(StrEnum):
    """What an explicit request asks for."""

    STEPS = "steps"
    SPLIT_STEP = "split_step"
    REMINDER = "reminder"
    CHECKIN = "checkin"
    TIME = "time"
    BREATHING = "breathing"
    GROUNDING = "grounding"
    BREAK = "break"
    SENSORY = "sensory"
    REFRAME = "reframe"
    OTHER = "other"


class Question(StrEnum):
    """What a question about their plan, state or memory asks."""

    NEXT_STEP = "next_step"
    PLAN = "plan"
    MEMORY = "memory"
    PROGRESS = "progress"
    TIME_SINCE_CHECKIN = "time_since_checkin"
    OTHER = "other"


class CrisisKind(StrEnum):
    """Which kind of danger a crisis message tells of (the safety reply differs)."""

    SUICIDE = "suicide"
    SELF_HARM = "self_harm"
    HARM_OTHERS = "harm_others"
    ABUSE = "abuse"
    MEDICAL = "medical"


ACTS: tuple[str, ...] = tuple(a.value for a in Act)
SIGNS: tuple[str, ...] = tuple(s.value for s in Sign)
REQUESTS: tuple[str, ...] = tuple(r.value for r in Request)
QUESTIONS: tuple[str, ...] = tuple(q.value for q in Question)
CRISIS_KINDS: tuple[str, ...] = tuple(k.value for k in CrisisKind)


class Understanding(BaseModel):
    """How the companion reads one message."""

    act: Act = Field(description="The message's main act.")
    also: list[Act] = Field(default_factory=list, description="Other acts of a mixed message, strongest first.")
    confidence: float = Field(ge=0, le=1, description="Probability of the main act.")
    sign: Sign = Field(Sign.NONE, description="What it says about the last suggestion.")
    sign_confidence: float = Field(0.0, ge=0, le=1, description="Probability of that sign.")
    steps: int | None = Field(None, description="Progress: how many steps they say they did (None: not said).")
    all_done: bool = Field(False, description="Progress: they say they finished the whole task.")
    request: Request | None = Field(None, description="What an explicit request asks for.")
    question: Question | None = Field(None, description="What a question asks about.")
    crisis: bool = Field(False, description="A crisis: the safety reply, never a coaching tool.")
    crisis_kind: CrisisKind | None = Field(None, description="Which kind of danger (None: not a crisis).")
    task: str | None = Field(None, description="A task the message names, as a short noun phrase ('your laundry').")
    source: str = Field("classifier", description="What decided the act: classifier, rule, model, or command.")
    scores: dict[str, float] = Field(default_factory=dict, description="Act probabilities, for debugging.")

    def has(self, act: Act) -> bool:
        """Whether ``act`` is the main act or one of the others."""
        return self.act is act or act in self.also
