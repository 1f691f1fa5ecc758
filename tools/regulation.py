"""Body and senses first: ``start_breathing_exercise``, ``sensory_check``,
``grounding_exercise``, ``suggest_break``. Fixed, literal wording: these are used when a
person is overloaded, so the same exercise always sounds the same."""

from __future__ import annotations

from typing import Annotated, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, StringConstraints

from tools.base import NoArgs, Result, call_key, clock_time, coaching_tool
from tools.context import ToolContext
from tools.writes import schedule

BreathingPattern = Literal["calm", "box", "4-7-8"]
GroundingMethod = Literal["5-4-3-2-1", "feet_on_floor", "cold_water", "describe_object"]

#: Phases of each breathing pattern: (action, seconds).
BREATHING: dict[str, list[tuple[str, int]]] = {
    "calm": [("in", 4), ("out", 6)],
    "box": [("in", 4), ("hold", 4), ("out", 4), ("hold", 4)],
    "4-7-8": [("in", 4), ("hold", 7), ("out", 8)],
}
_SAY_PHASE = {"in": "breathe in through your nose for {n}", "hold": "hold for {n}", "out": "breathe out slowly for {n}"}

SENSORY_QUESTIONS = [
    "Is it too loud, or is a noise bothering you?",
    "Is the light too bright or flickering?",
    "Are you too warm or too cold?",
    "Are you hungry or thirsty?",
    "Is anything you're wearing itchy, tight or uncomfortable?",
]

GROUNDING: dict[str, list[str]] = {
    "5-4-3-2-1": ["Name 5 things you can see", "4 things you can touch", "3 things you can hear",
                  "2 things you can smell", "1 thing you can taste"],
    "feet_on_floor": ["Press both feet into the floor", "Notice how the floor feels under them",
                      "Feel the weight of your body on the chair", "Take one slow breath out"],
    "cold_water": ["Run cool water over your hands, or hold something cold",
                   "Notice the feeling for about 30 seconds", "Take one slow breath out"],
    "describe_object": ["Pick one thing near you", "Say its colour and shape out loud",
                        "Say what it feels like and what it's for"],
}


class BreathingArgs(BaseModel):
    """Arguments of ``start_breathing_exercise``."""

    pattern: BreathingPattern = Field("calm", description="'calm' (in 4, out 6; gentlest), 'box' (4-4-4-4) "
                                                          "or '4-7-8' (in 4, hold 7, out 8; for sleep or panic).")
    rounds: int = Field(3, ge=1, le=10, description="How many breaths (1-10).")


class GroundingArgs(BaseModel):
    """Arguments of ``grounding_exercise``."""

    method: GroundingMethod = Field("5-4-3-2-1", description="'5-4-3-2-1' (the senses), 'feet_on_floor', "
                                                             "'cold_water' or 'describe_object' (simplest).")


class BreakArgs(BaseModel):
    """Arguments of ``suggest_break``."""

    minutes: int = Field(5, ge=1, le=60, description="Length of the break in minutes (1-60).")
    activity: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        "stand up, stretch and drink some water", description="What to do in the break, as said to the person.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def build(ctx: ToolContext) -> list[BaseTool]:
    """The regulation tools bound to ``ctx``."""

    async def start_breathing_exercise(args: BreathingArgs, user_id: str) -> Result:
        phases = BREATHING[args.pattern]
        said = ", then ".join(_SAY_PHASE[action].format(n=n) for action, n in phases)
        times = "once" if args.rounds == 1 else f"{args.rounds} times"
        content = f"Let's breathe together: {said}. We'll do that {times}, and I'll count with you."
        return content, {"event": "breathing_started", "pattern": args.pattern, "rounds": args.rounds,
                         "phases": [{"action": a, "seconds": n} for a, n in phases],
                         "total_seconds": args.rounds * sum(n for _, n in phases)}

    async def sensory_check(args: NoArgs, user_id: str) -> Result:
        content = "Let's check what's around you. " + " ".join(SENSORY_QUESTIONS)
        return content, {"event": "sensory_check", "questions": SENSORY_QUESTIONS}

    async def grounding_exercise(args: GroundingArgs, user_id: str) -> Result:
        steps = GROUNDING[args.method]
        # One sentence of steps and one of reassurance (the companion's style is two sentences at most):
        # items that continue a list ("4 things you can touch") follow a comma, steps follow ", then".
        said = _lower_first(steps[0]) + "".join(
            (", " + s if s[:1].isdigit() else ", then " + _lower_first(s)) for s in steps[1:])
        content = f"Let's ground together: {said}. Take your time, there's no rush."
        return content, {"event": "grounding_started", "method": args.method, "steps": steps}

    async def suggest_break(args: BreakArgs, user_id: str) -> Result:
        due = ctx.clock() + args.minutes * 60
        reminder, saved = await schedule(ctx, user_id, "reminder", due,
                                         "Your break is over. Ready for the next small step?", key=call_key("break"))
        content = (f"Let's take a {args.minutes}-minute break: {args.activity}. "
                   f"I'll let you know when it's over, at {clock_time(due)}.")
        return content, {"event": "break_started", "minutes": args.minutes, "activity": args.activity,
                         "due_at": reminder.due_at, "reminder_id": reminder.id, "saved": saved}

    return [
        coaching_tool(
            "start_breathing_exercise",
            "Guide a short paced-breathing exercise. Use when the person is anxious, panicky, overwhelmed, "
            "angry, or too stressed to think. 'calm' is the gentlest default.",
            BreathingArgs, start_breathing_exercise),
        coaching_tool(
            "sensory_check",
            "Ask a few literal questions about noise, light, temperature, hunger or thirst, and clothing. Use when "
            "the person is irritable, overloaded or can't focus and the cause may be their surroundings or body.",
            NoArgs, sensory_check),
        coaching_tool(
            "grounding_exercise",
            "Guide a grounding exercise that brings attention back to the here and now through the senses. Use "
            "when the person feels spaced out, unreal, spiralling, or caught in racing thoughts.",
            GroundingArgs, grounding_exercise),
        coaching_tool(
            "suggest_break",
            "Suggest a short break with a concrete activity, and schedule a reminder for when it ends. Use when "
            "the person is tired, stuck, frustrated, or has worked a long time without stopping.",
            BreakArgs, suggest_break),
    ]
