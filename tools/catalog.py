"""What the agent's policy knows about each tool: whether it is an intervention, the
situations it suits (in the person's words, for embedding), how to announce it, and
deterministic default arguments from a message when no model fills them in."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from memories.records import MAX_TEXT_CHARS
from tools.wording import as_gerund, clean_task, is_noun_phrase, second_person, shorten, task_phrase


class ToolSpec(BaseModel):
    """Policy metadata of one coaching tool."""

    name: str = Field(description="The tool's name, as in tools.TOOL_NAMES.")
    kind: Literal["intervention", "utility"] = Field(
        description="Interventions change how the person is doing and are chosen and scored by the policy; "
                    "utilities answer a question or update a record.")
    when_to_use: str = Field(description="Situations it suits, in the person's words; embedded to judge relevance.")
    activity: str = Field(description="How a transition warning names it, e.g. 'a short breathing exercise'.")


_SPECS: list[tuple[str, Literal["intervention", "utility"], str, str]] = [
    ("create_microsteps", "intervention",
     "I don't know where to start, this task is too big, I'm stuck, I keep putting it off, I can't get going.",
     "breaking the task into small steps"),
    ("get_current_step", "utility",
     "What was I doing? What's my next step? Where was I in my plan?", "looking up your current step"),
    ("mark_step_complete", "utility",
     "I did it, I finished that step, done, that part is finished.", "ticking off that step"),
    ("create_reminder", "intervention",
     "Remind me later, I'll forget, I keep getting distracted and lose track of time, I have to switch to "
     "something else or leave soon, don't let me forget to take my meds.", "setting a reminder"),
    ("get_current_time", "utility",
     "What time is it? How late is it? I lost track of time.", "checking the time"),
    ("schedule_checkin", "intervention",
     "Check on me in a bit, keep me accountable, I'm starting now and might drift off.", "scheduling a check-in"),
    ("get_time_since_last_checkin", "utility",
     "How long have I been at this? How long since we last talked?", "checking how long it has been"),
    ("log_micro_win", "intervention",
     "I managed to do something, I got up, I finished a small thing, I'm a bit proud of this.", "noting your win"),
    ("start_breathing_exercise", "intervention",
     "I feel anxious, panicky, my heart is racing, I'm too stressed to think.", "a short breathing exercise"),
    ("sensory_check", "intervention",
     "Everything is too loud or too bright, I feel irritable and overloaded, I can't focus and don't know why.",
     "a quick check of your surroundings"),
    ("grounding_exercise", "intervention",
     "My thoughts are racing, I'm spiralling, I feel spaced out or unreal, I'm not really here.",
     "a short grounding exercise"),
    ("suggest_break", "intervention",
     "I'm exhausted, I've been at this for hours, my brain is fried, I need to stop for a bit.", "a short break"),
    ("reframe_thought", "intervention",
     "I'm so stupid, I always mess up, I can't do anything right, I should be better than this.",
     "looking at that thought in a kinder way"),
    ("rate_response", "utility",
     "That helped, that wasn't useful, that was too long, I liked that, thanks that was great.",
     "noting your feedback"),
]

#: Policy metadata of every tool, by name.
TOOL_SPECS: dict[str, ToolSpec] = {
    name: ToolSpec(name=name, kind=kind, when_to_use=when, activity=activity) for name, kind, when, activity in _SPECS
}
#: Tools that act on how the person is doing (the rest are utilities).
INTERVENTION_TOOLS: tuple[str, ...] = tuple(n for n, s in TOOL_SPECS.items() if s.kind == "intervention")

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "five": 5, "ten": 10, "fifteen": 15, "twenty": 20,
            "thirty": 30, "forty-five": 45, "half an": 0.5}
_IN_TIME = re.compile(r"\bin\s+(\d{1,4}|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) +
                      r")\s*(minutes?|mins?|hours?|hrs?)\b", re.IGNORECASE)
_REMIND = re.compile(r"^(?:please\s+|can you\s+|could you\s+)?remind me\b\s*(?:to\s+|about\s+|that\s+)?", re.IGNORECASE)
# "i forgot my meds again", "I keep forgetting to drink water": what they forget is what to remind of.
_FORGOT = re.compile(r"\b(?:forgot|forget|forgetting)\s+(?:about\s+)?(?:to\s+)?(?P<what>[^,.;!?]+)", re.IGNORECASE)


def minutes_in(message: str, default: int) -> int:
    """Minutes named in ``message`` ("in 20 minutes", "in an hour"), else ``default``; 1 to 1440."""
    found = _IN_TIME.search(message)
    if not found:
        return default
    amount = _NUMBERS.get(found.group(1).lower()) or float(found.group(1))
    minutes = amount * 60 if found.group(2).lower().startswith("h") else amount
    return int(min(max(minutes, 1), 1440))


def _task_phrase(task: str) -> str:
    """A task as something to check in about: ``your essay``, ``writing your essay``, or (a phrase
    that starts with no verb it knows) ``your task, ...``."""
    phrase = clean_task(task)
    if is_noun_phrase(phrase):
        return phrase
    return as_gerund(phrase) or f"your task, {phrase}"


# "I can't (make myself) start my essay, ..." -> "my essay": what the person is stuck on.
_STUCK_ON = re.compile(
    r"\b(?:can'?t|cannot|can not|need to|have to|has to|should|must|want to|trying to|keep putting off|"
    r"keep avoiding|avoiding|putting off|procrastinating on)\s+"
    r"(?:(?:get|make|bring)\s+(?:myself\s+)?(?:to\s+)?)?"
    r"(?:(?:start(?:ed|ing)?(?:\s+on|\s+with)?|begin(?:ning)?|do(?:ing)?|finish(?:ing)?|work(?:ing)? on|"
    r"get(?:ting)? started on|going on|going with)\s+)?"
    r"(?P<task>[^,.;!?]+)", re.IGNORECASE)
# Words that name no task: "i cant start", "i need to focus" say they are stuck, not on what.
_VAGUE = {"it", "this", "that", "anything", "something", "things", "myself", "going", "started", "focus", "start",
          "begin", "do it", "think", "concentrate", "move", "cope", "get going", "get started"}


# "this homework is killing me", "the laundry pile is huge": a common task named anywhere.
_TASK_NOUN = re.compile(
    r"\b(?:my|this|the|that|these|those)\s+((?:\w+\s+){0,2}?(?:homework|essay|report|laundry|dishes|project|emails?|"
    r"taxes|tax forms?|room|kitchen|assignment|exam|paper|presentation|application|applications|forms?|bills?|"
    r"chores|inbox|code|thesis|slides|worksheet|studying|revision|house|flat|apartment|desk|garage|errands))\b",
    re.IGNORECASE)


def task_from_message(message: str) -> str | None:
    """The task a message says the person is stuck on, in the second person, if it names one."""
    found = _STUCK_ON.search(message or "")
    if found:
        phrase = re.split(r"\s+(?:but|and|because|so|it|which)\s+", found["task"].strip(), maxsplit=1)[0]
        phrase = re.sub(r"\s+(?:today|now|right now|anymore|at all)$", "", phrase.strip(), flags=re.IGNORECASE)
        if phrase and phrase.lower() not in _VAGUE and (named := task_phrase(phrase)):
            return named
    noun = _TASK_NOUN.search(message or "")
    return f"your {noun.group(1).lower()}" if noun else None


_STRUGGLE = re.compile(
    r"\b(can'?t|cannot|won'?t|don'?t|didn'?t|not|never|no|hate|failed?|fail|stuck|bad at|too (much|big|hard)|"
    r"overwhelm\w*|avoid\w*|stupid|mess(ed)? up)\b", re.IGNORECASE)


def default_args(tool_name: str, *, message: str, task: str | None) -> dict[str, Any]:
    """Valid arguments for ``tool_name`` derived from the person's ``message`` and current
    ``task`` without a model. Raises ``ValueError`` when there are none (an unknown tool,
    or ``rate_response`` without a 1-5 rating in the message)."""
    message = " ".join((message or "").split())
    task = " ".join((task or "").split()) or task_from_message(message)
    if tool_name == "create_microsteps":
        return {"task": shorten(task or "the next thing on your list", 500), "max_steps": 5}
    if tool_name == "create_reminder":
        request = " ".join(_IN_TIME.sub("", message).split())
        asked = _REMIND.match(request)  # "remind me to X" names what to remind of; else the task does
        forgot = None if asked else _FORGOT.search(request)
        said = second_person(request[asked.end():].strip(" ,.")) if asked else \
            (task_phrase(forgot.group("what")) or "") if forgot else ""  # never "it": "ugh forgot it" says nothing
        # Only what they asked to be reminded of, or their task: never their words echoed back.
        text = said if said and len(said.split()) <= 8 else (f"come back to {task}" if task else
                                                              "take a moment and check how you're doing")
        return {"text": shorten(text, 300), "minutes_from_now": minutes_in(message, 15)}
    if tool_name == "schedule_checkin":
        about = shorten(_task_phrase(task), 300) if task else "your progress"
        return {"minutes_from_now": minutes_in(message, 10), "about": about}
    if tool_name == "log_micro_win":
        # Chosen for a struggle ("I can't start", "I hate how bad I am at this"), the win is having
        # named it; echoing the struggle back as "a real win" would read as mockery.
        if not message or _STRUGGLE.search(message):
            return {"win": "you noticed what feels hard and said it out loud"}
        return {"win": f"you made progress on {task}" if task else "you showed up and kept going"}
    if tool_name == "start_breathing_exercise":
        return {"pattern": "calm", "rounds": 3}
    if tool_name == "grounding_exercise":
        return {"method": "5-4-3-2-1"}
    if tool_name == "suggest_break":
        return {"minutes": 5, "activity": "stand up, stretch and drink some water"}
    if tool_name == "reframe_thought":
        return {"thought": shorten(message or "this feels too hard", 1000)}  # the tool never quotes it at length
    if tool_name in ("sensory_check", "get_current_step", "mark_step_complete", "get_current_time",
                     "get_time_since_last_checkin"):
        return {}
    if tool_name == "rate_response":
        rating = re.search(r"(?<![\d.])([1-5])(?:\s*(?:/|out of)\s*5)?(?![\d.])", message)
        if rating is None:
            raise ValueError("rate_response needs a rating from 1 to 5 in the message")
        return {"rating": int(rating.group(1)), "comment": shorten(message, MAX_TEXT_CHARS)}
    raise ValueError(f"unknown tool {tool_name!r}; known: {sorted(TOOL_SPECS)}")
