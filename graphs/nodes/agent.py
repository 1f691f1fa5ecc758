"""Step 4, choose: what to do with what the person said, act by act.

* A crisis gets the safety reply, never a tool (``graphs.understanding.safety``).
* Progress advances the plan (by as many steps as they say).
* An explicit request runs what was asked; a question about the plan answers it.
* How the last suggestion went is acknowledged (a micro-win when it helped); when it is
  unclear right after a suggestion, the companion asks once.
* Greetings, off-topic messages and goodbyes get what a coach says to them.
* Only a struggle goes to the learning policy (``graphs.policy``): a Thompson-sampling
  choice from the general prior, the chat model's constrained proposal and this person's
  outcomes. Mixed messages get both parts ("did the first bit but now I'm stuck").
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.intents import detect_intent
from graphs.nodes.common import message_text, ms_since, subject_text
from graphs.policy import choose_tool, turn_rng
from graphs.state import CompanionState
from graphs.tracing import traced
from graphs.turn import NO_DECISION, Decision, PolicyEvidence, ToolCallSpec
from graphs.understanding import rules
from graphs.understanding.acts import Act, Question, Request, Sign, Understanding
from graphs.understanding.senses import sense_named
from memories.current_state import CurrentStateMemory
from memories.errors import MemoryUnavailable
from tools.catalog import INTERVENTION_TOOLS, default_args, task_from_message
from tools.store import Plan
from tools.writes import latest_plan

log = logging.getLogger(__name__)

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


async def current_plan(deps: CompanionDeps, user: str, state: CompanionState) -> Plan | None:
    """The person's plan (None without one); while memory is offline or their changes wait in
    the outbox, the plan as this process last saw it, so a person mid-plan goes on."""
    try:
        return await latest_plan(deps.store, deps.outbox, user, offline=bool(state.get("degraded")))
    except MemoryUnavailable:
        return None


# Words of a moment to be reminded at: forgetting, leaving, a time of day. Not bare "time" ("every
# time"), "am" ("I am stuck") or "before" ("like before"), which nearly every message has.
_TIME_CUE = re.compile(r"\b(?:forget|forgot|forgetting|remind|remember|late|later|soon|leave|leaving|meeting|"
                       r"appointment|o'?clock|minutes?|hours?|tonight|tomorrow|lunch|dinner|deadline|noon|"
                       r"(?:track of|on|what|the) time|\d{1,2}(?::\d\d)? ?(?:am|pm)|(?:by|at|in) \d+)\b")
_REQUEST_TOOLS = {Request.REMINDER: "create_reminder", Request.CHECKIN: "schedule_checkin",
                  Request.TIME: "get_current_time", Request.BREATHING: "start_breathing_exercise",
                  Request.GROUNDING: "grounding_exercise", Request.BREAK: "suggest_break",
                  Request.SENSORY: "sensory_check", Request.REFRAME: "reframe_thought"}
_QUESTION_TOOLS = {Question.NEXT_STEP: "get_current_step", Question.PLAN: "get_current_step",
                   Question.PROGRESS: "get_current_step", Question.TIME_SINCE_CHECKIN: "get_time_since_last_checkin"}


def plan_task(plan: Plan | None) -> str | None:
    """The active plan's task as a short phrase (None without an active plan)."""
    return task_from_message(f"I need to {plan.task}") or plan.task if plan and not plan.done else None


RECENT_WORDS = 3  # how many of the person's earlier messages a task they named still counts for


def recent_task(messages: Sequence[AnyMessage], *, turns: int = RECENT_WORDS) -> str | None:
    """The task the person named in one of their last ``turns`` messages before the latest one,
    newest first: "nah, still stuck" two turns after "I have to clean my room and can't start"
    is still about the room, not "the next thing on your list"."""
    earlier = [m for m in messages if m.type == "human"][:-1]
    for said in reversed(earlier[-turns:]):
        if task := task_from_message(message_text(said)):
            return task
    return None


def sensory_answer(state: CompanionState, reading: Understanding, message: str) -> str | None:
    """The sense their message names when it answers the sensory check still pending ("its the
    fridge humming" after "is a noise bothering you?"), or None. A message that says how it went
    ("the noise is better now") is an outcome, not an answer."""
    if reading.sign not in (Sign.NONE, Sign.UNCLEAR):
        return None
    pending = state.get("last_intervention_id")
    tried = [e for e in state.get("session_log") or [] if e.get("kind") == "intervention"]
    if not pending or not tried or tried[-1].get("id") != pending or tried[-1].get("tool") != "sensory_check":
        return None
    return sense_named(message)


def request_decision(reading: Understanding, message: str, plan: Plan | None, *, earlier: str | None = None
                     ) -> Decision:
    """What an explicit request asks for."""
    active = plan is not None and not plan.done
    kind = reading.request or Request.OTHER
    named = reading.task or task_from_message(message)
    same_task = not named or named == plan_task(plan)
    # "break it down" inside a plan splits the current step; a task they name starts a new plan.
    if kind is Request.SPLIT_STEP or (kind is Request.STEPS and active and same_task):
        if not active:
            return Decision(tool=None, source="request", say="ask_task", reason="a step to split, but no plan")
        args = {"task": plan.current_step or plan.task, "replace_current": True}
        return Decision(tool="create_microsteps", args=args,
                        source="request", intervention=True, reason="the step is too big: split it")
    if kind is Request.STEPS:
        task = named or earlier  # "can you break it down" right after naming the task is about that task
        if not task:
            return Decision(tool=None, source="request", say="ask_task", reason="steps, but for which task?")
        return Decision(tool="create_microsteps", args={"task": task, "max_steps": 5}, source="request",
                        intervention=True, reason="you asked for steps")
    tool = _REQUEST_TOOLS.get(kind)
    if tool is None:
        return Decision(tool=None, source="request", say="generic", reason="a request I have no tool for")
    args = default_args(tool, message=message, task=plan_task(plan))
    return Decision(tool=tool, args=args, source="request", intervention=tool in INTERVENTION_TOOLS,
                    reason="you asked for it")


def question_decision(reading: Understanding) -> Decision:
    """What a question about the plan, state or memory needs."""
    kind = reading.question or Question.OTHER
    if kind is Question.MEMORY:
        return Decision(tool=None, source="question", say="memory", reason="what I remember")
    tool = _QUESTION_TOOLS.get(kind)
    if tool is None:
        return Decision(tool=None, source="question", say="question_other", reason="a question I can't answer")
    return Decision(tool=tool, source="question", reason=f"a question about your {kind.value.replace('_', ' ')}")


async def policy_decision(state: CompanionState, deps: CompanionDeps, cfg: Configuration, message: str,
                          plan: Plan | None, *, heard: bool) -> tuple[Decision, float]:
    """The learning policy's choice for a struggle (and the chat model's time)."""
    relevance = state.get("relevance") or {}
    if "create_reminder" in relevance and not _TIME_CUE.search(message.lower()):
        # A reminder is set only when the person speaks of time, forgetting or leaving ("I'll forget my
        # tablets at lunch"); "ugh I keep scrolling tiktok" is not a request to be reminded of anything.
        relevance = {t: r for t, r in relevance.items() if t != "create_reminder"}
    candidates = sorted(relevance)
    proposal, model_ms = None, 0.0
    if deps.settings.model_proposal and candidates and not heard:
        model_start = time.perf_counter()
        proposal = await propose_tool(deps, message, candidates)
        model_ms = ms_since(model_start)
    near = state.get("neighbors") or PolicyEvidence()
    choice = choose_tool(
        relevance=relevance, neighbors=near.near, rates=near.rates, settings=deps.settings.policy,
        rng=turn_rng(cfg.user_id, cfg.seed or cfg.thread_id, state.get("turn", 0), message),
        proposal=proposal, half_life_days=deps.settings.policy.half_life_days, population=near.population,
    )
    named = task_from_message(message)
    ongoing = plan_task(plan)
    args = default_args(choice.tool, message=message, task=named or ongoing or recent_task(state["messages"]))
    if choice.tool == "create_microsteps" and ongoing and (not named or named == ongoing):
        args = {"task": plan.current_step or plan.task, "replace_current": True}  # stuck inside the plan: smaller
    decision = Decision(
        tool=choice.tool, args=args, source="policy", intervention=not heard, reason=choice.reason,
        why=choice.why, evidence=choice.evidence, from_memory=choice.from_memory, proposal=proposal,
        beliefs={t: {"prior": round(b.prior, 3), "mean": round(b.mean, 3), "sample": round(b.sample, 3),
                     "similar": round(b.similar_weight, 2), "pool": round(b.pool_weight, 2)}
                 for t, b in choice.beliefs.items()},
    )
    return decision, model_ms


_NEGATION = re.compile(r"\b(?:not|no|never|nothing|nada|cannot|can'?t|cant|cnt|won'?t|haven'?t|havent|didn'?t|"
                       r"didnt|don'?t|dont|unable)\b|n't\b")


def looks_like_a_struggle(state: CompanionState, reading: Understanding, message: str = "",
                          plan: Plan | None = None) -> bool:
    """A message the heads were unsure of that is most likely a moment to help with:

    * an unclear "how it went" with nothing pending to be about ("now I'm overwhelmed by the
      noise", "Task: clean the flat. Status: not started.") when struggling has some weight;
    * "still stuck" with nothing pending to be about ("nah still stuck" after the last try was
      already settled): "that one didn't fit" would be about nothing, so it gets something to
      try. A bare "no" is not that: it answers "want to try something different?";
    * "progress" with no plan to progress on and nothing pending, said with a negation ("The
      form has twelve sections. I cannot determine the first action."), when struggling is
      the runner-up: celebrating that as a win would be the worst reply."""
    if state.get("last_intervention_id") or reading.source != "classifier":
        return False
    struggle = reading.scores.get(Act.STRUGGLE.value, 0.0)
    if reading.act is Act.OUTCOME:
        if reading.sign is Sign.NOT_HELPED:
            return rules.still_stuck(message)
        return reading.sign in (Sign.UNCLEAR, Sign.NONE) and struggle >= 0.1
    if reading.act is Act.PROGRESS and (plan is None or plan.done) and _NEGATION.search(message.lower()):
        ranked = sorted((a for a in reading.scores if a not in (Act.CRISIS.value, Act.PROGRESS.value)),
                        key=lambda a: reading.scores[a], reverse=True)
        return bool(ranked) and ranked[0] == Act.STRUGGLE.value and struggle >= 0.1
    return False


def outcome_decision(state: CompanionState, deps: CompanionDeps, reading: Understanding) -> Decision:
    """How the last suggestion went: acknowledge it, or ask once when it is unclear."""
    pending = bool(state.get("last_intervention_id"))
    if reading.sign is Sign.HELPED:
        if deps.memory.registry.get(CurrentStateMemory) is None:
            return Decision(tool=None, source="acknowledge", say="went_well", reason="they said it helped")
        return Decision(tool="log_micro_win", args={"win": "what we tried helped you get going"}, source="acknowledge",
                        reason="they said it helped; celebrate it")
    if reading.sign is Sign.NOT_HELPED and not pending:
        # Nothing pending to be about: "no" answers "want to try something different?", and
        # asking it again would not hear them.
        return Decision(tool=None, source="acknowledge", say="no_thanks", reason="they said no: leave it with them")
    if reading.sign is Sign.NOT_HELPED:
        return Decision(tool=None, source="acknowledge", say="went_badly", reason="they said it did not help")
    if pending and not state.get("asked_outcome"):
        return Decision(tool=None, source="ask", say="ask_outcome", reason="unclear whether it helped: ask once")
    return Decision(tool=None, source="acknowledge", say="generic", reason="unclear, already asked")


def line_facts(say: str, state: CompanionState, plan: Plan | None) -> dict[str, Any]:
    """What a graph line needs: the plan's step for a greeting or goodbye, memories for "what do you know"."""
    if say in ("greeting_plan", "goodbye_plan") and plan is not None and not plan.done:
        return {"n": plan.current + 1, "total": len(plan.steps), "step": plan.current_step,
                "task": plan_task(plan) or "your task"}
    if say == "memory":
        lines = [ln.strip("- ").strip() for ln in (state.get("context") or "").splitlines()
                 if ln.strip() and not ln.rstrip().endswith(":")]
        return {"memory": " ".join(lines[:2])[:300]} if lines else {}
    return {}


def with_calls(decision: Decision, before: list[ToolCallSpec]) -> Decision:
    """The decision with its tool calls listed (``before`` first)."""
    calls = [*before, *([ToolCallSpec(name=decision.tool, args=decision.args)] if decision.tool else [])]
    return decision.model_copy(update={"calls": calls})


@traced("choose_intervention")
async def choose_intervention(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps
                              ) -> dict[str, Any]:
    """Decide the turn's tool calls (if any) and emit them as an AI message with ``tool_calls``."""
    start = time.perf_counter()
    cfg = Configuration.from_runnable_config(config)
    message = subject_text(state)
    # A voice model decides its own tool calls (and hears requests itself): for words it heard,
    # the policy's choice is a suggestion that goes into its context, not a call made here.
    heard = state.get("live") == "heard"
    reading = Understanding.model_validate(state["understanding"]) if state.get("understanding") else None
    model_ms = 0.0
    plan: Plan | None = None
    before: list[ToolCallSpec] = []
    if not message or reading is None:
        decision = NO_DECISION
    elif reading.crisis:
        decision = Decision(tool=None, source="safety", say="safety", reason=f"safety first ({reading.crisis_kind})")
    elif heard:
        decision = Decision(tool=None, source="none", reason=f"heard: {reading.act.value}")
        if reading.has(Act.STRUGGLE) or reading.act is Act.STRUGGLE:
            decision, _ = await policy_decision(state, deps, cfg, message, None, heard=True)
    else:
        plan = await current_plan(deps, cfg.user_id, state)
    if message and reading is not None and not reading.crisis and not heard:
        active = plan is not None and not plan.done
        intent = detect_intent(message)
        # A struggle that merely sounds like a request ("it's too big"), or a request for nothing the
        # companion has a tool for that also tells of a struggle ("i come to talk to my essay, it is too
        # big"), goes to the policy; an explicit one ("can you break it into steps") was made the main
        # act by the rules.
        asks = (reading.act is Act.REQUEST or (Act.REQUEST in reading.also and reading.act is not Act.STRUGGLE)) \
            and not (reading.request in (None, Request.OTHER) and Act.STRUGGLE in reading.also)
        progress = reading.has(Act.PROGRESS) and reading.sign is not Sign.NOT_HELPED
        if progress and active and not (intent and intent.tool == "mark_step_complete"):
            before.append(ToolCallSpec(name="mark_step_complete",
                                       args={"steps": reading.steps or 1, "all_steps": reading.all_done}))
        if state.get("after_crisis") and not asks and reading.act is not Act.QUESTION:
            # A moment ago they said plainly they were in danger: "im fine" or "ugh my essay" is
            # not a cue for a task yet. Stay with them (a request or a question is answered).
            decision = Decision(tool=None, source="after_crisis", say="after_crisis",
                                reason="right after a crisis: no coaching yet")
            before = []
        elif intent is not None and intent.tool in ("rate_response", "get_current_time", "mark_step_complete",
                                                    "get_current_step", "get_time_since_last_checkin"):
            decision = Decision(tool=intent.tool, args=intent.args, source="request", reason="you asked for it")
        elif asks:
            decision = request_decision(reading, message, plan, earlier=recent_task(state["messages"]))
        elif reading.act is Act.QUESTION:
            decision = question_decision(reading)
            if before and decision.tool == "get_current_step":  # the step just completed says what's next
                decision = Decision(tool=None, source="progress", reason="progress, then the next step")
        elif (sense := sensory_answer(state, reading, message)) is not None:
            # The check stays pending: "ok that's better" next settles it as helped.
            decision = Decision(tool=None, source="sensory", say=f"sensory_{sense}",
                                reason=f"they named what bothers them ({sense}): the adjustment that fits")
        elif reading.has(Act.STRUGGLE) or looks_like_a_struggle(state, reading, message, plan):
            decision, model_ms = await policy_decision(state, deps, cfg, message, plan, heard=False)
            if before and decision.tool == "create_microsteps" and decision.args.get("replace_current"):
                before[0].args["split_next"] = True  # did a bit, stuck on the next: complete, then split the next
                decision = decision.model_copy(update={"calls": before})
                before = []
        elif progress:
            if before:
                decision = Decision(tool=None, source="progress", reason="progress on the plan")
            else:
                decision = outcome_decision(state, deps, reading.model_copy(update={"sign": Sign.HELPED}))
        elif reading.act is Act.OUTCOME or reading.sign is not Sign.NONE:
            decision = outcome_decision(state, deps, reading)
        elif reading.act is Act.GREETING:
            decision = Decision(tool=None, source="greeting", say="greeting_plan" if active else "greeting")
        elif reading.act is Act.GOODBYE:
            decision = Decision(tool=None, source="goodbye", say="goodbye_plan" if active else "goodbye")
        elif reading.act is Act.OFF_TOPIC:
            decision = Decision(tool=None, source="redirect", say="redirect", reason="off topic: redirect gently")
        else:
            decision = Decision(tool=None, source="none", say="generic")
    if not decision.calls:
        decision = with_calls(decision, before)
    if decision.say and reading is not None and not heard:
        decision = decision.model_copy(update={"facts": line_facts(decision.say, state, plan)})
    update: dict[str, Any] = {"decision": decision,
                              "timings": {"choose_intervention": ms_since(start), "model_propose": model_ms}}
    if decision.calls and not heard:
        rng = turn_rng(cfg.user_id, cfg.seed or cfg.thread_id, state.get("turn", 0), "call-ids")
        calls = [{"name": c.name, "args": c.args, "id": f"call_{rng.getrandbits(48):012x}", "type": "tool_call"}
                 for c in decision.calls]
        update["messages"] = [AIMessage(content="", tool_calls=calls, id=f"ai-{uuid.uuid4().hex[:12]}")]
    return update
