"""What the graph itself says (greetings, goodbyes, acknowledgements, the check question),
and the several wordings of each tool's reply: one is picked per turn by the seeded turn
RNG, never the one said last, so the companion does not sound like a recording.

Tool replies are reworded from the tool's artifact (its facts), not from the person's
words: nothing here repeats what they said.
"""

from __future__ import annotations

import random
from typing import Any

from tools.base import clock_time
from tools.wording import clean_task

_PHASE = {"in": "breathe in through your nose for {n}", "hold": "hold for {n}", "out": "breathe out slowly for {n}"}
ECHO_WORDS = 6  # a reminder may name what they asked for, but never parrot a long sentence back

LINES: dict[str, tuple[str, ...]] = {
    "greeting": ("Hi! What's on your plate today?", "Hey, good to see you. What are you working on?",
                 "Hello! What would help most right now?"),
    "greeting_plan": ("Hi! You're on step {n} of {total} of {task}: {step}. Ready to go on?",
                      "Welcome back! Next up for {task}: {step}.",
                      "Hey! Where we left off: step {n} of {total}, {step}."),
    "goodbye": ("Bye for now, thanks for checking in. I'm here when you need me.",
                "Take care! Come back any time.", "See you soon. You did what you could today, and that counts."),
    "goodbye_plan": ("Bye for now! Your plan is saved. Next: {step}.",
                     "Take care. When you're back, we'll pick up at step {n}.",
                     "See you soon. {task} is waiting at step {n}, no rush."),
    "redirect": ("That's outside what I can help with, but I'm good at getting things started. What's on your plate?",
                 "I'm not the best one for that. I can help you start a task or feel calmer: want to try?",
                 "I'll leave that one to a search engine. Is there a task I can help you break down?"),
    "went_well": ("That counts, nice work! What's the next tiny step?", "I'm glad that helped. Want to keep going?",
                  "Good to hear. What would you like to do next?"),
    "went_badly": ("Thanks for telling me, that one didn't fit. Want to try something different?",
                   "Okay, that didn't help, and that's useful to know. Shall we try another way?",
                   "Got it, not that one then. What feels hardest right now?"),
    # A "no" with no suggestion pending: the answer to "want to try something different?".
    "no_thanks": ("Okay, no pressure. I'm here whenever you want to try something.",
                  "That's fine. Tell me when you'd like to pick it up again.",
                  "Alright, we can leave it for now. I'm here if you need me."),
    "ask_outcome": ("Did that help, or not really?", "Quick check: did that help at all?",
                    "Was that useful, or not really?"),
    "no_plan": ("There's no plan yet. Tell me the task and I'll break it into tiny steps.",
                "We don't have a plan yet. What task should we break down?"),
    "ask_task": ("Sure! Which task should I break into small steps?", "Happy to. What's the task?"),
    "memory": ("Here's what I remember: {memory}", "From our sessions I know: {memory}"),
    "memory_empty": ("I don't know much about you yet. The more we talk, the more I'll learn what helps you.",),
    "question_other": ("I'm not sure about that. Want to see your plan, or tell me what's on your plate?",),
    "all_clear": ("Thanks for telling me, I'm glad you're okay. If that changes, that help is there any time.",
                  "Okay, thank you. If it ever stops being okay, reach out to that help straight away."),
    # The answer to a sensory check names what bothers them: the one adjustment that fits, then back to them.
    "sensory_noise": ("That sound can be really hard to tune out. Could you move away from it for a bit, or put on "
                      "earplugs, headphones or some steady background sound?",
                      "Noise like that wears you down. Can you shut a door on it, or block it with headphones or "
                      "earplugs for a while?"),
    "sensory_light": ("Harsh light is draining. Could you dim it, turn away from it, or lower your screen's "
                      "brightness for a bit?",
                      "That light sounds like a lot. Can you switch it off, move out of it, or wear a cap or "
                      "sunglasses for a while?"),
    "sensory_temperature": ("Being too hot or too cold makes everything harder. Could you open a window, add or take "
                            "off a layer, or have a glass of cold water?",
                            "Your body's comfort comes first. Can you change what you're wearing or the room's "
                            "temperature a little?"),
    "sensory_hunger": ("Running on empty makes everything harder. Could you have a snack and a glass of water first? "
                       "The rest can wait five minutes.",
                       "Let's look after that first: something small to eat and some water, then we'll see."),
    "sensory_touch": ("Clothes that bother you can take up all your attention. Could you change into something softer, "
                      "or take off what's bothering you?",
                      "That would get to anyone. Can you swap it for something comfier for now?"),
    "sensory_smell": ("A smell like that is hard to ignore. Could you open a window or move somewhere the air is "
                      "fresher for a bit?",
                      "Let's get you some fresher air: a window, or another room, for a few minutes?"),
    "sensory_crowd": ("Lots of people at once is a lot to take in. Could you find a quieter corner, or step outside "
                      "for a few minutes?",
                      "That's a lot of people. Is there somewhere quieter you could go for a little while?"),
    "generic": ("I'm here with you. What's one tiny thing you could start with?",
                "Okay. What's the smallest next thing you could do?"),
}

TOOL_LINES: dict[str, tuple[str, ...]] = {
    "plan_created": ("I've split it into {total} tiny steps. Step 1: {step}.",
                     "Here's a plan with {total} small steps. First: {step}.",
                     "Okay, {total} tiny steps. Start with this one: {step}."),
    "step_split": ("Let's make it smaller. Now it's just: {step}.", "Smaller, then. First only this: {step}.",
                   "Okay, a tinier piece: {step}."),
    "current_step": ("Step {n} of {total}: {step}.", "You're on step {n} of {total}: {step}.",
                     "Right now it's step {n} of {total}: {step}."),
    "step_completed": ("Nice work, {what} done. Next: {step}.", "Done! Next up: {step}.",
                       "{What} ticked off. Now: {step}."),
    "plan_done": ("That was the last step: {task} is done. You did it, that's a real win!",
                  "Every step is done, you finished {task}! That's a real win.",
                  "{Task}: all done! Take a moment to notice that you did it."),
}


def pick(options: tuple[str, ...], rng: random.Random, avoid: str | None = None, **facts: Any) -> str:
    """One wording of ``options`` filled with ``facts``, other than ``avoid`` when there is a choice."""
    filled = [_capital(o.format(**facts)) for o in options]
    choices = [f for f in filled if f != avoid] or filled
    return rng.choice(choices)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def line(key: str, rng: random.Random, avoid: str | None = None, **facts: Any) -> str:
    """A graph line (see :data:`LINES`)."""
    return pick(LINES[key], rng, avoid, **facts)


def tool_line(artifact: dict[str, Any], rng: random.Random, avoid: str | None = None) -> str | None:
    """Another wording of a plan tool's reply from its artifact, or None to keep the tool's own."""
    event = artifact.get("event")
    steps = artifact.get("steps") or []
    task = clean_task(str(artifact.get("task") or "your task"))
    facts = {"total": artifact.get("total") or len(steps), "task": task, "Task": task[:1].upper() + task[1:]}
    if event == "reminder_created" and artifact.get("due_at"):
        text, at = str(artifact.get("text") or ""), clock_time(float(artifact["due_at"]))
        if text and len(text.split()) <= ECHO_WORDS:
            return pick(("Okay, I'll remind you at {at}: {text}.", "Done. At {at} I'll remind you: {text}."),
                        rng, avoid, at=at, text=text)
        return pick(("Okay, I'll remind you about that at {at}.", "Done, I'll remind you at {at}."), rng, avoid, at=at)
    if event == "breathing_started" and artifact.get("phases"):
        said = ", then ".join(_PHASE[ph["action"]].format(n=ph["seconds"]) for ph in artifact["phases"])
        rounds = int(artifact.get("rounds") or 3)
        times = "once" if rounds == 1 else f"{rounds} times"
        return pick(("Let's breathe together: {said}. We'll do that {times}, and I'll count with you.",
                     "Let's slow down with a few breaths: {said}. {Times}, at your pace.",
                     "Breathe with me: {said}. We'll do it {times}."), rng, avoid, said=said, times=times,
                    Times=times[:1].upper() + times[1:])
    if event == "break_started" and artifact.get("minutes"):
        return pick(("Let's take a {m}-minute break: {a}. I'll let you know when it's over.",
                     "Time for a {m}-minute pause: {a}. I'll tell you when it's time to come back.",
                     "Take {m} minutes off: {a}. I'll call you back after."), rng, avoid,
                    m=artifact["minutes"], a=artifact.get("activity") or "stand up and stretch")
    if event == "checkin_scheduled" and artifact.get("due_at"):
        about = str(artifact.get("about") or "how it's going")
        return pick(("I'll check in with you at {at} about {about}.", "Okay, I'll look in on you at {at}: {about}.",
                     "At {at} I'll ask how {about} is going."), rng, avoid,
                    at=clock_time(float(artifact["due_at"])), about=about)
    if event == "sensory_check" and artifact.get("questions"):
        # One question at a time: an overloaded person answers one, not a list.
        asked = rng.choice(list(artifact["questions"]))
        return pick(("Let's check what's around you. {q}", "Let's look at your surroundings for a moment. {q}",
                     "Quick check of the space you're in. {q}"), rng, avoid, q=asked)
    if event == "plan_created":
        return pick(TOOL_LINES["plan_created"], rng, avoid, step=artifact.get("current_step"), **facts)
    if event == "step_split":
        return pick(TOOL_LINES["step_split"], rng, avoid, step=artifact.get("current_step"), **facts)
    if event == "current_step":
        return pick(TOOL_LINES["current_step"], rng, avoid, n=int(artifact.get("index", 0)) + 1,
                    step=artifact.get("step"), **facts)
    if event == "step_completed" and artifact.get("plan_done"):
        return pick(TOOL_LINES["plan_done"], rng, avoid, **facts)
    if event == "step_completed" and not artifact.get("split"):
        done = artifact.get("done_steps") or [artifact.get("step")]
        what = "that step is" if len(done) == 1 else f"{len(done)} steps are"
        return pick(TOOL_LINES["step_completed"], rng, avoid, what=what, What=what[:1].upper() + what[1:],
                    step=artifact.get("next_step"), **facts)
    return None


def plan_lines(steps: list[str], current: int | None) -> str:
    """The whole plan, done steps ticked, for a person who asked to see it."""
    marks = []
    for i, step in enumerate(steps):
        mark = "✓" if current is None or i < current else ("→" if i == current else " ")
        marks.append(f"{mark} {i + 1}. {step}")
    return "\n".join(marks)
