"""With a capable chat model (Gemini): its structured reading of a message, merged with the
offline one. The model adds what it understands better (odd wording, long rambles); it is
never the only safeguard: a crisis either reader sees is a crisis, and when the two readers
disagree about whether the last suggestion helped, nothing is settled."""

from __future__ import annotations

import asyncio
import logging

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from graphs.understanding.acts import Act, CrisisKind, Question, Request, Sign, Understanding
from memories.records import MAX_TEXT_CHARS

log = logging.getLogger(__name__)
TIMEOUT_S = 4.0

PROMPT = (
    "You read one message sent to a coaching companion for people with ADHD or autism, right after the "
    "companion suggested something. Classify it.\n"
    "act: greeting (hello, small talk), struggle (needs help now), progress (did a step or part of the task), "
    "outcome (how the last suggestion went), request (asks for steps, a reminder, a check-in, the time, "
    "breathing, a break...), question (about their plan, state or memory), off_topic, goodbye (leaving or "
    "thanks), crisis (suicidal thoughts, self-harm, harming others, danger or abuse at home, overdose or a "
    "medical emergency; NOT hyperbole like 'this homework is killing me').\n"
    "also: the other acts of a mixed message. sign: helped, not_helped, unclear, or none when the message is "
    "not about the last suggestion.\nMessage: "
)


class ModelReading(BaseModel):
    """What the chat model is asked for."""

    act: Act = Field(description="The message's main act.")
    also: list[Act] = Field(default_factory=list, description="Other acts of a mixed message.")
    sign: Sign = Field(description="Whether the last suggestion helped: helped, not_helped, unclear or none.")
    request: Request | None = Field(None, description="For a request: what it asks for.")
    question: Question | None = Field(None, description="For a question: what it asks about.")
    crisis_kind: CrisisKind | None = Field(None, description="For a crisis: which kind of danger.")


async def read_with_model(model: BaseChatModel, text: str, timeout_s: float = TIMEOUT_S) -> ModelReading | None:
    """The model's reading, or None when it fails in any way (the offline reading then stands alone)."""
    try:
        raw = await asyncio.wait_for(model.with_structured_output(ModelReading).ainvoke(PROMPT + text[:MAX_TEXT_CHARS]),
                                     timeout_s)
        return raw if isinstance(raw, ModelReading) else ModelReading.model_validate(raw)
    except Exception as exc:  # outage, timeout, bad output: the offline reader is enough on its own
        # A validation error repeats the model's output, which can repeat the message: details at DEBUG.
        log.info("understanding: no model reading (%s)", type(exc).__name__)
        log.debug("understanding: the model reading failed: %s", exc)
        return None


def merge(offline: Understanding, model: ModelReading) -> Understanding:
    """One reading from both (see the module docstring)."""
    if offline.crisis:
        return offline
    if model.act is Act.CRISIS:
        return offline.model_copy(update={"act": Act.CRISIS, "also": [], "crisis": True, "sign": Sign.NONE,
                                          "crisis_kind": model.crisis_kind or CrisisKind.SUICIDE, "source": "model"})
    settled = (Sign.HELPED, Sign.NOT_HELPED)
    sign = offline.sign
    if model.sign in settled and offline.sign in settled and model.sign is not offline.sign:
        sign = Sign.UNCLEAR  # the readers disagree: doubt settles nothing (the companion may ask)
    elif model.sign in settled and offline.sign in (Sign.NONE, Sign.UNCLEAR):
        sign = model.sign
    also = [a for a in model.also if a not in (model.act, Act.CRISIS)]
    return offline.model_copy(update={
        "act": model.act, "also": also, "sign": sign, "source": "model",
        "request": offline.request or model.request if (model.act is Act.REQUEST or Act.REQUEST in also) else None,
        "question": offline.question or model.question if (model.act is Act.QUESTION or Act.QUESTION in also)
        else None})
