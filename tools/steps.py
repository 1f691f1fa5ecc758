"""Breaking a task into tiny steps and walking through them: ``create_microsteps``,
``get_current_step``, ``mark_step_complete``."""

from __future__ import annotations

import re
from typing import Annotated

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, StringConstraints

from memories.errors import InvalidInput, RecordNotFound
from tools.base import NoArgs, Result, ask_model, call_key, coaching_tool
from tools.context import ToolContext
from tools.store import MAX_STEP_CHARS, MAX_STEPS, Plan
from tools.wording import clean_task, is_noun_phrase, sentence, split_task
from tools.writes import CompleteSteps, SavePlan, SplitStep, latest_plan, write_or_queue

MIN_STEPS, MAX_PLAN_STEPS = 3, 7
TaskText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CreateMicrostepsArgs(BaseModel):
    """Arguments of ``create_microsteps``."""

    task: TaskText = Field(description="The task to break down, in the person's words, e.g. 'clean the kitchen'.")
    max_steps: int = Field(5, ge=MIN_STEPS, le=MAX_PLAN_STEPS,
                           description="Most steps to make (3-7). Fewer, smaller steps are easier to start.")
    replace_current: bool = Field(False, description="True when the person says the current step of their plan is "
                                                     "too big: break that step into smaller ones in place (the task "
                                                     "is then the step) instead of making a new plan.")


class CompleteArgs(BaseModel):
    """Arguments of ``mark_step_complete``."""

    steps: int = Field(1, ge=1, le=MAX_PLAN_STEPS, description="How many steps they did ('did the first two' is 2).")
    all_steps: bool = Field(False, description="True when they say they finished the whole task.")
    split_next: bool = Field(False, description="True when they are stuck on what comes next: split the new "
                                                "current step into smaller ones.")


class StepDraft(BaseModel):
    """What the chat model is asked for."""

    steps: list[str] = Field(description="3 to 7 tiny, concrete steps; each is one physical action starting "
                                         "with a verb, under 12 words.")


def rule_steps(task: str, max_steps: int = 5) -> list[str]:
    """Deterministic, task-specific micro-steps: a task with several parts gets one step per
    part; a single task gets gather, timer, tiny start, keep going, break."""
    goal = clean_task(task)
    parts = split_task(goal)
    max_steps = max(MIN_STEPS, min(max_steps, MAX_PLAN_STEPS))
    if len(parts) > 1:
        first = parts[0]
        gather = f"Get out everything you need {'for' if is_noun_phrase(first) else 'to'} {first}"
        steps = [gather, *(sentence(p) for p in parts), "Notice what you got done and take a short break"]
        if len(steps) > max_steps:
            steps = steps[:-1]  # the break goes first, then the gathering
        if len(steps) > max_steps:
            steps = steps[1:]
        return steps[:max_steps]
    if is_noun_phrase(goal):
        gather, start = f"Get out everything you need for {goal}", f"Do the very first tiny part of {goal}"
    else:
        gather, start = f"Get out everything you need to {goal}", f"Start to {goal}: just the very first tiny part"
    timer, keep_going = "Set a timer for 10 minutes", "Keep going until the timer rings"
    finish = "Stop, notice what you got done, and take a short break"
    by_count = {3: [gather, start, finish], 4: [gather, timer, start, finish]}
    return by_count.get(max_steps, [gather, timer, start, keep_going, finish])


def smaller_steps(step: str) -> list[str]:
    """Three smaller steps for one step that felt too big."""
    goal = clean_task(step).rstrip(".")
    goal = goal[:1].lower() + goal[1:]
    return ["Put what you need for it right in front of you",
            f"Do just one minute of this: {goal}" if goal else "Do just one minute of it",
            "Pause and notice what you did"]


def usable_steps(draft: StepDraft | None, max_steps: int) -> list[str] | None:
    """A model's steps, tidied (numbering stripped, duplicates dropped, cut to ``max_steps``),
    or None when there are fewer than three usable ones."""
    if draft is None:
        return None
    steps: list[str] = []
    for raw in draft.steps:
        step = re.sub(r"^\s*(?:step\s*)?(?:\d+[.):]|[-*•])\s*", "", str(raw), flags=re.IGNORECASE).strip()
        if step and len(step) <= MAX_STEP_CHARS and step.lower() not in {s.lower() for s in steps}:
            steps.append(step.rstrip("."))
    return steps[:max_steps] if len(steps) >= MIN_STEPS else None


async def current_plan(ctx: ToolContext, user_id: str) -> Plan | None:
    """The person's plan as the tools must use it (see :func:`tools.writes.latest_plan`)."""
    return await latest_plan(ctx.store, ctx.queue, user_id)


def completed_locally(plan: Plan | None, count: int, now: float) -> tuple[Plan, list[str]]:
    """``plan`` with ``count`` more steps done (what Redis will hold once the write lands)."""
    if plan is None:
        raise RecordNotFound("there is no plan yet")
    if plan.done:
        raise InvalidInput("every step of the plan is already done", field="plan")
    upto = min(len(plan.steps), plan.current + count)
    done = plan.steps[plan.current:upto]
    return plan.model_copy(update={"current": upto, "completed_at": now if upto >= len(plan.steps) else None}), done


def split_locally(plan: Plan, parts: list[str]) -> Plan:
    """``plan`` with its current step replaced by ``parts``."""
    if plan.done:
        raise InvalidInput("every step of the plan is already done", field="plan")
    steps = [*plan.steps[:plan.current], *parts, *plan.steps[plan.current + 1:]]
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"a plan holds at most {MAX_STEPS} steps", field="plan")
    return plan.model_copy(update={"steps": steps})


def build(ctx: ToolContext) -> list[BaseTool]:
    """The step tools bound to ``ctx``."""

    async def create_microsteps(args: CreateMicrostepsArgs, user_id: str) -> Result:
        if args.replace_current:
            return await split_current(user_id)
        prompt = [
            ("system", "You help a person with ADHD start a task. Break it into tiny, concrete, physical steps, "
                       f"at most {args.max_steps}, at least {MIN_STEPS}. Each step starts with a verb and takes "
                       "under five minutes. Use 'you', be kind, no judgement."),
            ("human", args.task),
        ]
        steps = usable_steps(await ask_model(ctx, StepDraft, prompt), args.max_steps)
        source = "model" if steps else "rules"
        steps = steps or rule_steps(args.task, args.max_steps)
        key, made = call_key("plan"), ctx.clock()
        plan = ctx.store.new_plan(args.task, steps, now=made)
        saved = await write_or_queue(
            ctx, SavePlan(key=key, user_id=user_id, task=plan.task, steps=plan.steps, created_at=made),
            lambda: ctx.store.save_plan(user_id, plan.task, plan.steps, now=made, key=key)) is not None
        if not saved:
            ctx.store.remember_plan(user_id, plan, key=key)
        # One step at a time: the person hears the first step only; the whole plan is in the
        # artifact (UIs show it) and comes back step by step with get_current_step.
        content = f"I've split it into {len(plan.steps)} tiny steps. Step 1: {plan.steps[0]}."
        return content, {
            "event": "plan_created", "task": plan.task, "steps": plan.steps, "index": 0,
            "current_step": plan.steps[0], "total": len(plan.steps), "source": source, "saved": saved}

    async def split_current(user_id: str) -> Result:
        plan = await current_plan(ctx, user_id)
        if plan is None or plan.done:
            raise ToolException("There is no step in progress to split; make a plan with create_microsteps first.")
        prompt = [("system", "Split this one step into 3 even smaller physical actions, each under 2 minutes, "
                             "each starting with a verb."), ("human", plan.current_step or "")]
        parts = usable_steps(await ask_model(ctx, StepDraft, prompt), 3) or smaller_steps(plan.current_step or "")
        plan, saved = await _split(user_id, plan, parts, call_key("split"))
        content = f"Let's make it smaller. Step {plan.current + 1} is now: {plan.current_step}."
        return content, {
            "event": "step_split", "task": plan.task, "steps": plan.steps, "index": plan.current,
            "current_step": plan.current_step, "total": len(plan.steps), "saved": saved}

    async def _split(user_id: str, plan: Plan, parts: list[str], key: str) -> tuple[Plan, bool]:
        parts = [ctx.store.new_plan("x", [p]).steps[0] for p in parts]
        stored = await write_or_queue(ctx, SplitStep(key=key, user_id=user_id, parts=parts),
                                      lambda: ctx.store.split_current_step(user_id, parts, key=key))
        if stored is not None:
            return stored, True
        local = ctx.store.result_of(key) or split_locally(plan, parts)
        ctx.store.remember_plan(user_id, local, key=key)
        return local, False

    async def get_current_step(args: NoArgs, user_id: str) -> Result:
        plan = await current_plan(ctx, user_id)
        if plan is None:
            return ("There's no plan yet. Tell me the task and I'll break it into small steps.", {"event": "no_plan"})
        if plan.done:
            return (f"Every step is done, you finished {clean_task(plan.task)}. Want to pick the next thing?",
                    {"event": "plan_done", "task": plan.task, "total": len(plan.steps)})
        return (f"Step {plan.current + 1} of {len(plan.steps)}: {plan.current_step}.",
                {"event": "current_step", "task": plan.task, "step": plan.current_step, "index": plan.current,
                 "total": len(plan.steps), "steps": plan.steps})

    async def mark_step_complete(args: CompleteArgs, user_id: str) -> Result:
        known = await current_plan(ctx, user_id)
        count = max(len(known.steps) - known.current if (known and args.all_steps) else args.steps, 1)
        key, at = call_key("complete"), ctx.clock()
        try:
            stored = await write_or_queue(ctx, CompleteSteps(key=key, user_id=user_id, count=count, at=at),
                                          lambda: ctx.store.complete_steps(user_id, count, now=at, key=key))
            if stored is None:
                plan, done = completed_locally(known, count, at)
                plan = ctx.store.result_of(key) or plan
                ctx.store.remember_plan(user_id, plan, key=key)
            else:
                plan, done = stored
        except RecordNotFound as exc:
            raise ToolException("There is no plan yet, so no step to mark done; use create_microsteps first.") from exc
        except InvalidInput as exc:
            raise ToolException("Every step of the plan is already done; there is nothing left to mark.") from exc
        saved = stored is not None
        what = "that step is" if len(done) == 1 else f"{len(done)} steps are"
        split = False
        if args.split_next and not plan.done:
            plan, split_saved = await _split(user_id, plan, smaller_steps(plan.current_step or ""), call_key("split"))
            split, saved = True, saved and split_saved
        if plan.done:
            content = f"That was the last step: {clean_task(plan.task)} is done. You did it, that's a real win!"
        elif split:
            content = f"Nice work, {what} done. Let's make the next one smaller: {plan.current_step}."
        else:
            content = f"Nice work, {what} done. Next: {plan.current_step}."
        return content, {
            "event": "step_completed", "step": (done or [plan.steps[max(plan.current - 1, 0)]])[-1],
            "done_steps": done, "plan_done": plan.done, "next_step": plan.current_step, "completed": plan.current,
            "total": len(plan.steps), "task": plan.task, "steps": plan.steps, "split": split, "saved": saved}

    return [
        coaching_tool(
            "create_microsteps",
            "Break a task the person feels stuck on or overwhelmed by into 3-7 tiny, concrete steps and save "
            "them as their plan (replacing any old plan). Use when they can't start, don't know where to begin, "
            "or a task feels too big. Returns the steps and the first one to do.",
            CreateMicrostepsArgs, create_microsteps),
        coaching_tool(
            "get_current_step",
            "Look up the step the person is on in their saved plan (or learn that there is no plan yet). "
            "Use when they ask what to do now or what's next, or lost track.",
            NoArgs, get_current_step),
        coaching_tool(
            "mark_step_complete",
            "Mark the current step of the person's plan as done (or as many steps as they say they did) and get "
            "the next one. Use when they say they finished or did the step. Tells whether the whole plan is done.",
            CompleteArgs, mark_step_complete),
    ]
