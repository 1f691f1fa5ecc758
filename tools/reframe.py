"""``reframe_thought``: a kinder, realistic way to see a harsh thought. A chat model writes
it when one is available; otherwise rules for the common thinking traps do (labels,
"should", "I can't", always/never, everyone/nobody, catastrophes)."""

from __future__ import annotations

import re
from typing import Annotated

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, StringConstraints

from tools.base import Result, ask_model, coaching_tool
from tools.context import ToolContext
from tools.wording import echo

ECHO_WORDS = 5  # longer thoughts are never repeated back: parroting feels like mockery


class ReframeArgs(BaseModel):
    """Arguments of ``reframe_thought``."""

    thought: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] = Field(
        description="The harsh or stuck thought in the person's own words, e.g. 'I always mess everything up'.")


class ReframeDraft(BaseModel):
    """What the chat model is asked for."""

    reframe: str = Field(min_length=1, max_length=300, description="One or two short, warm, realistic sentences "
                                                                   "that answer the thought kindly, using 'you'.")


# (pattern name, regex on the lower-cased thought, reply; {echo} is the thought in the second person,
# {word} the words that matched, as they said them: "'Have to' adds ...", never a "should" they did not say)
RULES: list[tuple[str, str, str]] = [
    ("label", r"\bi(?:'m| am) (?:so |such an? |just |really |a )?(?:stupid|lazy|useless|failure|worthless|"
              r"broken|hopeless|idiot|dumb|pathetic|mess|terrible|bad)\b",
     "That's a harsh name for a hard moment. Finding this difficult says how hard it is, not what you're worth."),
    ("hindsight", r"\bshould(?:n't| not)? have\b|\bshould've\b",
     "Looking back makes things seem easier than they were. You did what you could then; what's one small "
     "thing you can do now?"),
    ("feelings_should", r"\bshouldn't (?:feel|be (?:upset|sad|anxious|angry|tired))",
     "Your feelings make sense, even the hard ones. You don't have to fix them right now."),
    ("should", r"\b(?:should|must|have to|ought to)\b",
     "'{word}' adds a lot of pressure. It's okay to do it one small step at a time, or not right now."),
    ("cant", r"\bi (?:can't|cannot|can not)\b",
     "It feels like {echo} right now, and that's okay. Let's find one small part you can do."),
    ("all_or_nothing", r"\b(?:always|never|every single time|nothing ever|everything always)\b",
     "It can feel like {echo}. That's the hard moment talking; there have been better times, and this one "
     "can go differently."),
    ("overgeneralising", r"\b(?:everyone|everybody|nobody|no one|no-one)\b",
     "When things are hard it can feel like {echo}. Is there one person who's been kind to you lately?"),
    ("catastrophising", r"\b(?:ruined|disaster|the worst|going to fail|will fail|it's over|can't cope|"
                        r"everything is)\b",
     "This feels huge right now, and that's hard. What's the most likely outcome, and what would help a little?"),
]
DEFAULT = "That sounds really hard. Thoughts aren't facts: what would you say to a good friend who thought this?"
GENERIC_ECHO = {"cant": "you can't do it", "all_or_nothing": "it's always this way",
                "overgeneralising": "everyone is against you"}


def rule_reframe(thought: str) -> tuple[str, str]:
    """A kind, realistic answer to ``thought`` from fixed rules: ``(reframe, pattern name)``."""
    text = " ".join(thought.split()).replace("\u2019", "'")
    for name, pattern, reply in RULES:
        if found := re.search(pattern, text.lower()):
            said = echo(text)
            if not said or len(said.split()) > ECHO_WORDS:
                said = GENERIC_ECHO.get(name, "")
            return reply.format(echo=said, word=found.group(0).capitalize()), name
    return DEFAULT, "other"


def sounds_right(reframe: str) -> bool:
    """Whether a model's reframe can be said as is: not empty, not looping (small models
    repeat a phrase until they run out of tokens), addressed to the person."""
    words = re.findall(r"[a-z']+", reframe.lower())
    looping = len(words) > 12 and len(set(words)) < 0.5 * len(words)
    return bool(words) and not looping and ("you" in words or "your" in words or "you're" in words)


def build(ctx: ToolContext) -> list[BaseTool]:
    """The reframe tool bound to ``ctx``."""

    async def reframe_thought(args: ReframeArgs, user_id: str) -> Result:
        prompt = [
            ("system", "You coach a person with ADHD or autism. Answer their harsh thought with a kinder, "
                       "realistic reframe in one or two short sentences, using 'you'. Don't dismiss the "
                       "feeling, don't lecture, no toxic positivity."),
            ("human", args.thought),
        ]
        draft = await ask_model(ctx, ReframeDraft, prompt)
        if draft is not None and sounds_right(draft.reframe):
            reframe, pattern, source = draft.reframe.strip(), "model", "model"
        else:
            (reframe, pattern), source = rule_reframe(args.thought), "rules"
        return reframe, {"event": "thought_reframed", "reframe": reframe, "pattern": pattern, "source": source}

    return [
        coaching_tool(
            "reframe_thought",
            "Offer a kinder, realistic way to see a harsh or stuck thought about oneself. Use when the person "
            "puts themselves down, says they always fail, can't do anything, should be better, or expects the "
            "worst. Pass the thought in their own words.",
            ReframeArgs, reframe_thought),
    ]
