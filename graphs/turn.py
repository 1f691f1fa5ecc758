"""The turn contract: what one run of the companion graph works out, as typed models.

The nodes write these into the graph's state, :class:`graphs.session.TurnResult` hands
them on, and every reader (voice, the CLI, ``--jsonl``, the demo, the evaluations) uses
them as they are: no reader re-derives a rule from a dict ("suggested = tool if the
policy chose it" is :attr:`Decision.suggested`, said once, here).

Per-turn scratch (the decision with the policy's beliefs, the neighbours, the few-shot
rows, the evidence, the due items, the timings) lives in channels that are never
checkpointed (:data:`Scratch`): a resumed session needs none of it, and a checkpoint
that carries up to 60 neighbours every turn is slower to write for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langgraph._internal._typing import MISSING
from langgraph.channels.untracked_value import UntrackedValue
from pydantic import BaseModel, Field

from graphs.understanding.acts import Sign
from memories.interventions import FewShotExample, Neighbor
from memories.outcomes import Outcome
from memories.population import PoolCount
from memories.ranking import ToolStats
from tools.catalog import TOOL_SPECS
from tools.store import DueItem, Plan

__all__ = ["NO_DECISION", "SETTLES_NOTHING", "Decision", "DueItem", "Evidence", "FewShot", "PlanView",
           "PolicyEvidence", "Scratch", "ScratchSum", "Source", "ToolCallSpec"]

Source = Literal["request", "acknowledge", "policy", "voice", "none", "safety", "progress", "question", "greeting",
                 "goodbye", "redirect", "ask", "after_crisis", "sensory"]


def Scratch(typ: type[Any]) -> UntrackedValue[Any]:  # noqa: N802 (reads as a type in an annotation)
    """A state channel that holds this run's value and is never written to a checkpoint."""
    return UntrackedValue(typ)


class ScratchSum(UntrackedValue[Any]):
    """A never-checkpointed channel that folds every update of a run with ``operator`` (the
    turn's timings). LangGraph has an untracked last-value channel but no untracked reducer;
    this is that channel with a fold (an ``UntrackedValue``, so LangGraph also keeps its
    pending writes out of the checkpointer)."""

    __slots__ = ("operator",)

    def __init__(self, typ: type[Any], operator: Callable[[Any, Any], Any]) -> None:
        super().__init__(typ, guard=False)
        self.operator = operator

    def __eq__(self, value: object) -> bool:
        return isinstance(value, ScratchSum) and value.operator is self.operator

    def copy(self) -> ScratchSum:
        empty = self.__class__(self.typ, self.operator)
        empty.key, empty.value = self.key, self.value
        return empty

    def from_checkpoint(self, checkpoint: Any) -> ScratchSum:
        empty = self.__class__(self.typ, self.operator)
        empty.key = self.key
        return empty

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        value = None if self.value is MISSING else self.value
        for update in values:
            value = self.operator(value, update)
        self.value = value
        return True


class ToolCallSpec(BaseModel):
    """One tool call the turn makes."""

    name: str = Field(description="The tool.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")


class Decision(BaseModel):
    """What the agent decided to do this turn."""

    tool: str | None = Field(description="The tool this turn is about (the intervention learnt from), or None.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    calls: list[ToolCallSpec] = Field(default_factory=list, description="Every tool call made, in order.")
    source: Source = Field(description="What decided it.")
    say: str | None = Field(None, description="A line of the graph's own to say (graphs.replies.LINES key).")
    intervention: bool = Field(False, description="True when this is an intervention to record and learn from.")
    reason: str = Field("", description="Why, in one line.")
    why: str = Field("", description="For a policy choice: the evidence behind it, in words for the person "
                                     "(\"helped you 4 of 5 times when you felt like this\").")
    evidence: Literal["you", "people", "general", "new"] | None = Field(
        None, description="Whose evidence decided a policy choice: theirs, other people's, general, or none.")
    from_memory: bool = Field(False, description="True when this person's history changed the choice.")
    proposal: str | None = Field(None, description="The tool the chat model proposed, if asked.")
    beliefs: dict[str, dict[str, float]] = Field(default_factory=dict, description="The policy's belief per tool.")
    facts: dict[str, Any] = Field(default_factory=dict, description="What the graph's line is filled with.")

    @property
    def suggested(self) -> str | None:
        """The tool the learning policy chose (None when anything else decided the turn)."""
        return self.tool if self.source == "policy" else None

    @property
    def suggested_why(self) -> str | None:
        """The policy's evidence line for its choice, in words for the person (None otherwise)."""
        return (self.why or None) if self.source == "policy" else None

    @property
    def safety(self) -> bool:
        """True when the turn got the safety reply."""
        return self.source == "safety"

    @property
    def activity(self) -> str | None:
        """What the decision's tool does, in words (\"a breathing exercise, about a minute\"), or None."""
        spec = TOOL_SPECS.get(self.tool) if self.tool else None
        return spec.activity if spec is not None else None

    @property
    def called(self) -> list[str]:
        """The names of the tools called this turn, in order."""
        return [c.name for c in self.calls]

    @property
    def ran(self) -> str | None:
        """The coaching tool this turn ran: the decision's own when it was called, else the last call."""
        names = self.called
        return self.tool if self.tool in names else (names[-1] if names else None)


class Evidence(BaseModel):
    """What the message says about the last intervention."""

    outcome: Outcome | None = Field(None, description="How it went, when the message settles it.")
    sign: Sign = Field(Sign.NONE, description="The message's sign (helped, not helped, unclear, none).")
    confidence: float = Field(0.0, description="How sure the reading of the sign is.")


SETTLES_NOTHING = Evidence()


class FewShot(BaseModel):
    """A past intervention shown to the model as an example (``--show-memory``, voice, the evals)."""

    id: str = Field(description="The intervention's id.")
    tool: str | None = Field(description="The tool it used (None: a plain reply).")
    said: str = Field(description="What the person had said.")
    reply: str = Field(description="What the companion replied.")
    outcome: Outcome = Field(description="How it went.")
    similarity: float = Field(description="Cosine similarity to this moment.")
    score: float = Field(description="The ranking score.")
    contrast: bool = Field(False, description="True for a failed example shown as what not to repeat.")

    @classmethod
    def of(cls, example: FewShotExample) -> FewShot:
        """The summary of a retrieved example."""
        i = example.intervention
        return cls(id=i.id, tool=i.tool_name, said=i.user_context, reply=i.text, outcome=i.outcome,
                   similarity=round(example.similarity, 3), score=round(example.score, 3), contrast=example.contrast)


class PolicyEvidence(BaseModel):
    """This person's (and, pooled, other people's) evidence for the policy's choice."""

    near: list[Neighbor] = Field(default_factory=list,
                                 description="Similar past tries the choice learns from (situation similarity).")
    rates: dict[str, ToolStats] = Field(default_factory=dict, description="Their results per tool, everywhere.")
    cluster: str | None = Field(None, description="The kind of moment this is (memories.population).")
    population: dict[str, PoolCount] = Field(default_factory=dict,
                                             description="What helped other people in that kind of moment.")


class PlanView(BaseModel):
    """The plan as the UIs show it."""

    task: str = Field(description="What the plan is for.")
    steps: list[str] = Field(default_factory=list, description="The steps, in order.")
    current: int | None = Field(None, description="The step they are on (1-based), None once done.")
    done: bool = Field(False, description="True when every step is done.")

    @classmethod
    def of(cls, plan: Plan | None) -> PlanView | None:
        """The view of a stored plan (None without one)."""
        if plan is None:
            return None
        return cls(task=plan.task, steps=list(plan.steps), current=None if plan.done else plan.current + 1,
                   done=plan.done)


#: The decision of a run that decided nothing (no message, or a run that stopped before the choice).
NO_DECISION = Decision(tool=None, source="none")
