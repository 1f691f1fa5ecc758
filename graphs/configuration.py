"""The companion graph's configuration: per-run values from ``config["configurable"]`` and
the tunables of the agent's choice, sessions and outbox (one typed object each)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, field_validator, model_validator

from memories.validation import run_user_id


class PolicySettings(BaseModel):
    """How the agent weighs what it believes in general against what worked for this person."""

    prior_strength: float = Field(1.5, gt=0, le=100, description="Pseudo-observations behind the general prior.")
    prior_floor: float = Field(0.25, ge=0, le=1, description="Prior success of the least relevant tool.")
    prior_span: float = Field(0.4, ge=0, le=1, description="Extra prior success of the most relevant tool.")
    relevance_temperature: float = Field(0.05, gt=0, le=1, description="Sharpness of the relevance softmax.")
    similar_from: float = Field(0.3, ge=-1, lt=1, description="Past situations less similar than this teach nothing.")
    similar_full: float = Field(0.6, gt=-1, le=1, description="Similarity at which a past situation counts fully.")
    global_weight: float = Field(
        0.15, ge=0, le=1, description="Weight of each outcome of the tool in other situations (capped at 1 in all)."
    )
    proposal_bonus: float = Field(0.15, ge=0, le=1, description="Prior boost for the tool the chat model proposes.")
    sharpness: float = Field(
        4.0, ge=1, le=100, description="Sampling from a k-times sharper belief: explores less, exploits sooner."
    )
    profile_weight: float = Field(
        0.7, ge=0, le=1,
        description="How much past moments are compared by situation profile, not raw wording (graphs.situations).")
    neighbors_k: int = Field(40, ge=1, le=500, description="Most similar settled tries the choice learns from.")
    pool: int = Field(60, ge=1, le=500, description="Similar past interventions read per turn.")
    discount: float = Field(
        0.85, gt=0, le=1, description="Weight a past try keeps for each newer try of the same tool in a similar moment."
    )
    evidence_weight: float = Field(
        2.0, gt=0, le=10, description="Pseudo-observations one settled try of this person's is worth."
    )
    discount_failed: float = Field(
        0.7, gt=0, le=1, description="Weight a past try keeps for each newer *failed* try of the same tool there "
                                      "(lower: a tool that stops helping loses its lead sooner)."
    )
    discount_any: float = Field(
        0.97, gt=0, le=1, description="Weight a past try keeps for each newer try of any tool in a similar moment."
    )
    change_failures: int = Field(
        2, ge=1, le=20,
        description="A tool that had helped in a moment and then failed this many times in a row there: a change.")
    change_discount: float = Field(
        0.3, ge=0, le=1, description="What is left of the weight of every try from before such a change (1: off).")
    half_life_days: float = Field(
        30.0, gt=0, le=3650, description="A past try's weight halves over this many days (besides newer tries)."
    )
    use_population: bool = Field(True, description="Let what helped other people (pooled counts) shape the prior.")
    population_min_people: int = Field(
        5, ge=1, le=1000, description="Pooled counts join the prior only once this many people contributed."
    )
    population_strength: float = Field(
        10.0, ge=0, le=100, description="Pseudo-observations the pool is worth to someone with no history of their own."
    )


class CompanionSettings(BaseModel):
    """Tunables of the companion graph and its sessions."""

    policy: PolicySettings = Field(default_factory=PolicySettings)
    model_proposal: bool = Field(True, description="Ask the chat model which tool it would pick (constrained).")
    idle_timeout_minutes: float = Field(30, gt=0, le=24 * 60, description="A session idle this long is ended.")
    ended_thread_ttl_days: float | None = Field(
        30, gt=0, le=3650, description="An ended session's conversation (its checkpoints) is deleted this many "
        "days after it ended (`never`: kept until `memory forget`). What was learnt from it stays in memory.")
    history_messages: int = Field(6, ge=0, le=50, description="Earlier messages the reply model sees.")
    keep_messages: int = Field(
        16, ge=4, le=1000, description="The person's and the companion's words a session's checkpoint keeps (older "
        "ones, and every run's tool calls and results, are dropped). Each kept message is serialised into every "
        "turn's checkpoint and read back at the next; the nodes read only the reply model's history and the run's "
        "own messages.")
    settle_window_minutes: float = Field(
        180, gt=0, le=7 * 24 * 60, description="A pending intervention older than this is not settled by a message."
    )
    outbox_limit: int = Field(1000, ge=1, le=100_000, description="Writes kept while Redis is unreachable.")

    @field_validator("ended_thread_ttl_days", mode="before")
    @classmethod
    def _never_expire(cls, value: Any) -> Any:
        # An environment variable cannot say None: "never" (or "none", "null") does.
        return None if isinstance(value, str) and value.strip().lower() in ("never", "none", "null") else value

    @model_validator(mode="after")
    def _keeps_the_history(self) -> CompanionSettings:
        # The history is taken from the kept words, before the person's latest message and the reply.
        if self.keep_messages < self.history_messages + 2:
            raise ValueError(f"keep_messages ({self.keep_messages}) must be at least history_messages + 2 "
                             f"({self.history_messages + 2}), or the reply model's history is cut short")
        return self


class Configuration(BaseModel):
    """Per-run values: whose turn it is and which session (thread) it belongs to."""

    user_id: str = Field(description="The person this turn belongs to.")
    thread_id: str | None = Field(None, description="The session (LangGraph thread) id.")
    seed: str | None = Field(None, description="Seeds the agent's random choices (evaluations); default: the thread.")

    @classmethod
    def from_runnable_config(cls, config: RunnableConfig | None) -> Configuration:
        """Read and validate ``config["configurable"]``; a missing user id is a clear error."""
        configurable: dict[str, Any] = (config or {}).get("configurable", {}) or {}
        seed = configurable.get("seed")
        return cls(user_id=run_user_id(config), thread_id=configurable.get("thread_id"),
                   seed=None if seed is None else str(seed))
