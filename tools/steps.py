"""Breaking a task into tiny steps and walking through them: ``create_microsteps``,
``get_current_step``, ``mark_step_complete``."""

from __future__ import annotations

import re
from typing import Annotated

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, StringConstraints

from memories.errors import InvalidInput, RecordNotFound
from tools.base import NoArgs, Result, ask_model, coaching_tool
from tools.context import ToolContext
from tools.store import MAX_STEP_CHARS
from tools.wording import clean_task, is_noun_phrase, sentence, split_task

MIN_STEPS, MAX_PLAN_STEPS = 3, 7
TaskText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CreateMicrostepsArgs(BaseModel):
    """Arguments of ``create_microsteps``."""

    task: TaskText = Field(description="The task to break down, in the person's words, e.g. 'clean the kitchen'.")
    max_steps: int = Field(5, ge=MIN_STEPS, le=MAX_PLAN_STEPS,
                           description="Most steps to make (3-7). Fewer, smaller steps are easier to start.")


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


def build(ctx: ToolContext) -> list[BaseTool]:
    """The step tools bound to ``ctx``."""

    async def create_microsteps(args: CreateMicrostepsArgs, user_id: str) -> Result:
        prompt = [
            ("system", "You help a person with ADHD start a task. Break it into tiny, concrete, physical steps, "
                       f"at most {args.max_steps}, at least {MIN_STEPS}. Each step starts with a verb and takes "
                       "under five minutes. Use 'you', be kind, no judgement."),
            ("human", args.task),
        ]
        steps = usable_steps(await ask_model(ctx, StepDraft, prompt), args.max_steps)
        source = "model" if steps else "rules"
        steps = steps or rule_steps(args.task, args.max_steps)
        plan = await ctx.store.save_plan(user_id, args.task, steps, now=ctx.clock())
        # One step at a time: the person hears the first step only; the whole plan is in the
        # artifact (UIs show it) and comes back step by step with get_current_step.
        content = f"I've split it into {len(plan.steps)} tiny steps. Step 1: {plan.steps[0]}."
        return content, {"event": "plan_created", "task": plan.task, "steps": plan.steps,
                         "current_step": plan.steps[0], "source": source}

    async def get_current_step(args: NoArgs, user_id: str) -> Result:
        plan = await ctx.store.plan(user_id)
        if plan is None:
            return ("There's no plan yet. Tell me the task and I'll break it into small steps.", {"event": "no_plan"})
        if plan.done:
            return (f"Every step is done, you finished {clean_task(plan.task)}. Want to pick the next thing?",
                    {"event": "plan_done", "task": plan.task, "total": len(plan.steps)})
        return (f"Step {plan.current + 1} of {len(plan.steps)}: {plan.current_step}.",
                {"event": "current_step", "task": plan.task, "step": plan.current_step, "index": plan.current,
                 "total": len(plan.steps)})

    async def mark_step_complete(args: NoArgs, user_id: str) -> Result:
        try:
            plan, step = await ctx.store.complete_step(user_id, now=ctx.clock())
        except RecordNotFound as exc:
            raise ToolException("There is no plan yet, so no step to mark done; use create_microsteps first.") from exc
        except InvalidInput as exc:
            raise ToolException("Every step of the plan is already done; there is nothing left to mark.") from exc
        if plan.done:
            content = "That was the last step, the whole plan is done. You did it, well done!"
        else:
            content = f"Nice work, that step is done. Next: {plan.current_step}."
        return content, {"event": "step_completed", "step": step, "plan_done": plan.done,
                         "next_step": plan.current_step, "completed": plan.current, "total": len(plan.steps)}

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
            "Mark the current step of the person's plan as done and get the next one. Use when they say they "
            "finished or did the step. Tells whether the whole plan is now done.",
            NoArgs, mark_step_complete),
    ]
