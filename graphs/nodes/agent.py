"""Step 3, choose the intervention: whether to act, and with which tool.

An explicit request wins ("what time is it?"). A message that reports how the last
intervention went gets an acknowledgement (a micro-win is logged when it went well).
Anything else is a situation: the policy (``graphs.policy``) picks a tool from the
general prior, the chat model's constrained proposal and this person's outcomes.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.intents import detect_intent
from graphs.nodes.common import last_human_text, ms_since
from graphs.policy import choose_tool, turn_rng
from graphs.state import CompanionState
from graphs.tracing import traced
from memories.current_state import CurrentStateMemory
from memories.interventions import Neighbor
from memories.ranking import FAILED, Outcome, ToolStats
from tools.catalog import default_args

log = logging.getLogger(__name__)


class Decision(BaseModel):
    """What the agent decided to do this turn."""

    tool: str | None = Field(description="The tool to run, or None for a plain reply.")
    args: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")
    source: Literal["request", "acknowledge", "policy", "voice", "none"] = Field(description="What decided it.")
    intervention: bool = Field(False, description="True when this is an intervention to record and learn from.")
    reason: str = Field("", description="Why, in one line.")
    from_memory: bool = Field(False, description="True when this person's history changed the choice.")
    proposal: str | None = Field(None, description="The tool the chat model proposed, if asked.")
    beliefs: dict[str, dict[str, float]] = Field(default_factory=dict, description="The policy's belief per tool.")


@functools.cache
def proposal_schema(candidates: tuple[str, ...]) -> type[BaseModel]:
    """The constrained answer a proposal may take (built once per set of candidates)."""
    return create_model(
        "ToolProposal", tool=(Literal[candidates], Field(description="The most helpful tool right now.")))


async def propose_tool(deps: CompanionDeps, message: str, candidates: list[str]) -> str | None:
    """Ask the chat model which tool it would use, constrained to the candidates; None if it can't."""
    schema = proposal_schema(tuple(candidates))
    prompt = (f'A person with ADHD says: "{message[:400]}". Which one coaching tool helps most right now? '
              f"Options: {', '.join(candidates)}.")
    try:
        result = await deps.chat_model.with_structured_output(schema).ainvoke(prompt)
    except Exception as exc:  # any model failure: decide without the proposal
        log.debug("no tool proposal: %s", exc)
        return None
    return getattr(result, "tool", None)


def _acknowledge(state: CompanionState, deps: CompanionDeps, message: str) -> Decision | None:
    """An acknowledgement when the message reports how this session's pending intervention went.
    Without one pending, "I keep getting distracted" is a situation to help with, not a report."""
    evidence = state.get("evidence")
    if not evidence or not evidence.get("outcome") or not state.get("last_intervention_id"):
        return None
    outcome = Outcome(evidence["outcome"])
    if outcome in FAILED:
        return Decision(tool=None, source="acknowledge", reason=f"they reported: {outcome.value}")
    if deps.memory.registry.get(CurrentStateMemory) is None:
        return Decision(tool=None, source="acknowledge", reason=f"they reported: {outcome.value}")
    return Decision(tool="log_micro_win", args={"win": message[:300]}, source="acknowledge",
                    reason=f"they reported: {outcome.value}; celebrate it")


@traced("choose_intervention")
async def choose_intervention(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps
                              ) -> dict[str, Any]:
    """Decide the turn's tool call (if any) and emit it as an AI message with ``tool_calls``."""
    start = time.perf_counter()
    cfg = Configuration.from_runnable_config(config)
    message = last_human_text(state["messages"])
    # A voice model decides its own tool calls (and hears requests itself): for words it heard,
    # the policy's choice is a suggestion that goes into its context, not a call made here.
    heard = state.get("live") == "heard"
    model_ms = 0.0
    if not message:
        decision = Decision(tool=None, source="none")
    elif not heard and (intent := detect_intent(message)):
        decision = Decision(tool=intent.tool, args=intent.args, source="request", intervention=intent.intervention,
                            reason="you asked for it")
    elif not heard and (acknowledgement := _acknowledge(state, deps, message)):
        decision = acknowledgement
    else:
        relevance = state.get("relevance") or {}
        candidates = sorted(relevance)
        proposal = None
        if deps.settings.model_proposal and candidates and not heard:
            model_start = time.perf_counter()
            proposal = await propose_tool(deps, message, candidates)
            model_ms = ms_since(model_start)
        near = state.get("neighbors") or {}
        choice = choose_tool(
            relevance=relevance,
            neighbors=[Neighbor(t, Outcome(o), s, a) for t, o, s, a in near.get("near", [])],
            rates={t: ToolStats(tool_name=t, settled=n, value_sum=v) for t, (n, v) in near.get("rates", {}).items()},
            settings=deps.settings.policy,
            rng=turn_rng(cfg.user_id, cfg.seed or cfg.thread_id, state.get("turn", 0), message),
            proposal=proposal,
            half_life_days=deps.memory.registry.backend.settings.ranking.recency_half_life_days,
        )
        decision = Decision(
            tool=choice.tool, args=default_args(choice.tool, message=message, task=None), source="policy",
            intervention=not heard, reason=choice.reason, from_memory=choice.from_memory, proposal=proposal,
            beliefs={t: {"prior": round(b.prior, 3), "mean": round(b.mean, 3), "sample": round(b.sample, 3),
                         "similar": round(b.similar_weight, 2)} for t, b in choice.beliefs.items()},
        )
    update: dict[str, Any] = {"decision": decision.model_dump(mode="json"),
                              "timings": {"choose_intervention": ms_since(start), "model_propose": model_ms}}
    if decision.tool and not heard:
        call = {"name": decision.tool, "args": decision.args, "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "tool_call"}
        update["messages"] = [AIMessage(content="", tool_calls=[call])]
    return update
