"""Synthetic interventions for benchmarks: realistic short utterances, mostly distinct,
with tools and mixed outcomes, generated deterministically from a seed."""

from __future__ import annotations

import random
import time
from typing import Any

from memories.outcomes import Outcome

SEED = 20240611
BENCH_TOOLS = ["break_task_down", "body_doubling", "focus_timer", "breathing_exercise", "sensory_break",
               "transition_warning", "priority_sort", "reward_plan", "grounding_54321", "visual_checklist"]
# Mixed outcomes, about a third still pending (weights are relative).
OUTCOME_WEIGHTS = {Outcome.PENDING: 30, Outcome.TASK_COMPLETED: 18, Outcome.TASK_PROGRESS: 17,
                   Outcome.RE_ENGAGED: 12, Outcome.DISTRACTED: 10, Outcome.ABANDONED: 8, Outcome.UNKNOWN: 5}

# --- synthetic utterances ------------------------------------------------------------------
# Short things a person says, by situation; slots are filled from the lists below so that
# 100k records are mostly distinct texts (about 10^6 combinations per situation).
SITUATIONS: dict[str, list[str]] = {
    "task-start": [
        "I have to {task} but I just can't get myself to start",
        "I've been staring at {task} for {dur} and nothing happens",
        "I keep meaning to {task}, it's {when} and I haven't even opened it",
        "how do I even begin to {task}",
        "I'm frozen, {task} feels impossible to start",
        "every time I try to {task} I end up doing something else",
    ],
    "overwhelm": [
        "there's too much, {task} and everything else {when}, I can't think",
        "my list is huge and I need to {task} {when}, I'm overwhelmed",
        "I'm drowning, {task} is due {when} and so is everything else",
        "I don't know what to do first, {task} or the rest",
        "it's all piling up and {task} is just one more thing",
    ],
    "distraction": [
        "I was supposed to {task} but I've been on my phone for {dur}",
        "I keep drifting off while trying to {task}",
        "I got distracted again, {task} is only half done",
        "I opened {app} for a second and lost {dur}",
        "I can't stay on {task}, my brain keeps jumping around",
    ],
    "sensory": [
        "it's so loud {place}, I can't {task} like this",
        "the lights {place} are too bright and I'm getting a headache",
        "everyone is talking {place} and it's too much",
        "my clothes feel wrong and I can't focus on {task}",
        "there's a smell {place} that I can't stand, I need to stop",
    ],
    "transition": [
        "I have to stop {task} and go to {event} in {dur}",
        "I don't want to switch from {task} to {event}",
        "{event} got moved to {when} and now my whole plan is off",
        "I need to leave for {event} but I'm in the middle of {task}",
        "switching to {event} after {task} always wrecks me",
    ],
    "time-blindness": [
        "I thought I had {dur} but {event} starts now",
        "I lost track of time and {task} is due {when}",
        "where did the afternoon go, I was going to {task}",
        "I'm always late for {event}, it happened again {when}",
    ],
    "rejection": [
        "{person} didn't answer my message and now I can't {task}",
        "I think {person} is annoyed with me, I can't focus",
        "I got feedback on {task} and I feel like a failure",
        "{person} said something at {event} and I keep replaying it",
    ],
    "low-energy": [
        "I'm exhausted and I still need to {task}",
        "I have no energy {when}, {task} feels like a mountain",
        "I slept badly and can't face {task}",
        "I'm running on empty but {task} has to happen {when}",
    ],
}
TASKS = ["write the report", "answer my emails", "clean the kitchen", "do the laundry", "study for the exam",
         "pay the bills", "call the doctor", "finish the slides", "fill in the tax form", "tidy my desk",
         "reply to my landlord", "read chapter four", "book the dentist", "cook dinner", "sort the paperwork",
         "start the essay", "fix the bug", "prepare the meeting notes", "water the plants", "pack for the trip",
         "renew my passport", "update my CV", "practise the presentation", "do my physio exercises"]
DURATIONS = ["ten minutes", "twenty minutes", "half an hour", "an hour", "two hours", "all morning",
             "the whole afternoon", "five minutes", "forty minutes", "three hours"]
WHEN = ["today", "tomorrow", "tonight", "this morning", "by Friday", "this week", "at noon", "before lunch",
        "after work", "on Monday"]
PLACES = ["in the office", "at the café", "in the kitchen", "on the bus", "in the supermarket", "at school",
          "in the open-plan room", "at home", "in the library", "at the train station"]
EVENTS = ["the meeting", "my appointment", "dinner", "the bus", "class", "the call with my boss", "therapy",
          "football practice", "the school run", "my shift"]
PEOPLE = ["my boss", "my sister", "my friend", "my partner", "my teacher", "a colleague", "my flatmate", "mum"]
APPS = ["YouTube", "Instagram", "TikTok", "Reddit", "the news", "my messages", "a game", "Wikipedia"]
OPENERS = ["", "", "", "ugh, ", "ok so ", "honestly ", "right now ", "help, ", "sorry, ", "so "]
CLOSERS = ["", "", "", " again", ", what now", ", any ideas", " and I hate it", ", please help", " today",
           ", it's bad"]
REPLIES = {
    "break_task_down": "Let's make {task} tiny: what is the very first two-minute step?",
    "body_doubling": "I'll stay with you while you {task}; tell me when you've started.",
    "focus_timer": "Let's set a 15-minute timer for {task} and stop when it rings.",
    "breathing_exercise": "Let's breathe in for four and out for six, three times, before {task}.",
    "sensory_break": "Step somewhere quieter for five minutes, then we'll look at {task}.",
    "transition_warning": "We'll wrap up in five minutes; write down where you stopped on {task}.",
    "priority_sort": "Let's pick the one thing that matters most today: is it {task}?",
    "reward_plan": "Pick a small reward for when {task} is done.",
    "grounding_54321": "Name five things you can see, four you can touch, then we'll go back to {task}.",
    "visual_checklist": "I'll put {task} on a checklist with three boxes to tick.",
}
NO_TOOL_REPLY = "That sounds hard. What would make {task} a little easier right now?"


def _utterance(rng: random.Random, situation: str) -> str:
    text = rng.choice(SITUATIONS[situation]).format(
        task=rng.choice(TASKS), dur=rng.choice(DURATIONS), when=rng.choice(WHEN), place=rng.choice(PLACES),
        event=rng.choice(EVENTS), person=rng.choice(PEOPLE), app=rng.choice(APPS))
    text = rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    return text[0].upper() + text[1:]


def synthetic_interventions(n: int, *, seed: int = SEED, now_s: float | None = None) -> list[dict[str, Any]]:
    """``n`` deterministic interventions (dicts accepted by ``InterventionMemory.record_many``)."""
    rng = random.Random(seed)
    stamp = time.time() if now_s is None else now_s
    outcomes, weights = list(OUTCOME_WEIGHTS), list(OUTCOME_WEIGHTS.values())
    out = []
    for _ in range(n):
        situation = rng.choice(list(SITUATIONS))
        task = rng.choice(TASKS)
        tool = rng.choice([*BENCH_TOOLS, None])  # about one in eleven is a plain reply
        out.append({
            "text": (REPLIES[tool] if tool else NO_TOOL_REPLY).format(task=task),
            "tool_name": tool,
            "tool_args": {"minutes": rng.choice([2, 5, 10, 15, 25])} if tool else {},
            "user_context": _utterance(rng, situation),
            "task": task if rng.random() < 0.3 else None,
            "situation_tags": [situation],
            "outcome": rng.choices(outcomes, weights)[0].value,
            "created_at": stamp - rng.uniform(0, 25 * 86400),  # within the 30-day TTL
        })
    return out


def novel_queries(n: int, seen: set[str], *, seed: int = SEED + 1) -> list[str]:
    """``n`` distinct utterances, none of them in ``seen`` (so none is in the embedding cache)."""
    rng = random.Random(seed)
    out: list[str] = []
    taken = set(seen)
    while len(out) < n:
        text = _utterance(rng, rng.choice(list(SITUATIONS)))
        if text not in taken:
            taken.add(text)
            out.append(text)
    return out
