"""Step 2, understand: what the person's message is (a greeting, a struggle, progress, how
the last suggestion went, a request, a question, off topic, goodbye, or a crisis).

The message goes through MiniLM here, once: the pass yields the understanding vector (the
tuned top layers, graphs/understanding/encoder.py) and the retrieval embedding, which is
handed to the turn's embedder so ``retrieve_few_shot`` reuses it. Only a struggle goes on to
the learning policy; every other act is answered the way a coach would
(``choose_intervention``). A crisis skips retrieval altogether: no few-shot example, no tool,
the safety reply. A crisis only the classifier saw is asked about ("are you safe right now?",
with the resources); if the next message says they are safe, the turn is about the moment
they described before, read again with only the explicit patterns able to call it a crisis.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from graphs.deps import CompanionDeps
from graphs.nodes.common import last_human_text, ms_since
from graphs.state import CompanionState
from graphs.tracing import traced
from graphs.turn import SETTLES_NOTHING, Evidence
from graphs.understanding import safety
from graphs.understanding.acts import Act, Sign, Understanding
from graphs.understanding.model import merge, read_with_model
from memories.outcomes import Outcome
from memories.records import MAX_TEXT_CHARS

log = logging.getLogger(__name__)
_DISTRACTED = re.compile(r"\b(?:distract\w*|phone|youtube|tiktok|insta\w*|reddit|scroll\w*|netflix|game|games|"
                         r"gaming|twitter|snap\w*|videos?|show|series|got sidetracked|rabbit hole|wandered off)\b",
                         re.IGNORECASE)

# "that helped, I got started": it helped *and* they did some of the task.
_DID_SOMETHING = re.compile(r"\b(?:got started|started|began|did (?:it|some|a bit|the)|done|finished|wrote|"
                            r"made a start|got (?:going|some|a bit)|first (?:part|step|bit))\b", re.IGNORECASE)


def outcome_of(reading: Understanding, text: str, *, plan_done: bool = False) -> Outcome | None:
    """The memory's outcome for a settled sign: how well it went, in the memory's terms."""
    if reading.sign is Sign.HELPED:
        if reading.all_done or plan_done:
            return Outcome.TASK_COMPLETED
        did = reading.has(Act.PROGRESS) or _DID_SOMETHING.search(text)
        return Outcome.TASK_PROGRESS if did else Outcome.RE_ENGAGED
    if reading.sign is Sign.NOT_HELPED:
        return Outcome.DISTRACTED if _DISTRACTED.search(text) else Outcome.ABANDONED
    return None


@traced("understand")
async def understand(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Read the message: its act(s), what it says about the last suggestion, safety."""
    start = time.perf_counter()
    message = last_human_text(state["messages"])
    if not message:
        return {"understanding": None, "evidence": None, "timings": {"understand": ms_since(start)}}
    held = state.get("safety_check")
    if held and safety.all_clear(message):
        # They were asked "are you safe right now?" about ``held`` and said they are: the turn is
        # about that moment again, read with only the explicit patterns able to call it a crisis.
        return await _after_all_clear(held, deps, start)
    if held and safety.not_safe(message):
        # "no", "i'm not ok": the answer to "are you safe right now?" is the crisis, said plainly.
        # The kind the classifier guessed a turn ago is only a guess: not "a medical emergency" for
        # "meds at dinner time i always forget em" answered "not sure"; the general safety reply.
        reading = Understanding(act=Act.CRISIS, confidence=1.0, crisis=True, crisis_kind=None, source="check")
        return {"understanding": reading.model_dump(mode="json"), "evidence": SETTLES_NOTHING,
                "timings": {"understand": ms_since(start)}}
    vector = await _embed(message[:MAX_TEXT_CHARS], deps)
    embedded = time.perf_counter()
    reading = deps.understanding.read(message, vector, answering_check=bool(state.get("asked_outcome")))
    model_ms = 0.0
    if deps.understanding_model is not None and not reading.crisis and not message.startswith("/"):
        model_start = time.perf_counter()
        if (model_reading := await read_with_model(deps.understanding_model, message)) is not None:
            reading = merge(reading, model_reading)
        model_ms = ms_since(model_start)
    outcome = outcome_of(reading, message)
    evidence = Evidence(outcome=outcome, sign=reading.sign, confidence=reading.sign_confidence)
    return {"understanding": reading.model_dump(mode="json"), "evidence": evidence,
            "timings": {"embed": round((embedded - start) * 1000, 3),
                        "understand": round(ms_since(embedded) - model_ms, 3), "model_understand": model_ms}}


async def _embed(text: str, deps: CompanionDeps) -> list[float]:
    """The understanding vector of ``text``; the same MiniLM pass's retrieval embedding goes to
    the turn's embedder, so retrieve_few_shot's search reuses it."""
    vector, retrieval = await deps.understanding.encoder.aencode(text)
    turn = deps.memory.embeddings
    if getattr(turn, "model_id", None) == deps.understanding.encoder.local.model_id:
        turn.remember(text, retrieval)
    return vector


async def _after_all_clear(held: str, deps: CompanionDeps, start: float) -> dict[str, Any]:
    """The reading of the moment they described before the safety check (it settles nothing:
    the all-clear is about safety, not about the last suggestion)."""
    text = held[:MAX_TEXT_CHARS]
    vector = await _embed(text, deps)
    embedded = time.perf_counter()
    reading = deps.understanding.read(text, vector, classifier_danger=False)
    if reading.act not in (Act.STRUGGLE, Act.REQUEST, Act.QUESTION) and not reading.has(Act.STRUGGLE):
        # It sounded like danger a turn ago, so it was no greeting or small talk: help with it
        # (a request or a question stays what it was: "remind me to take my meds at 8").
        reading = reading.model_copy(update={"act": Act.STRUGGLE, "sign": Sign.NONE})
    # ``subject``: the later nodes work on this message, not the all-clear (record_outcome clears it).
    return {"understanding": reading.model_dump(mode="json"), "subject": text, "evidence": SETTLES_NOTHING,
            "timings": {"embed": round((embedded - start) * 1000, 3), "understand": round(ms_since(embedded), 3),
                        "model_understand": 0.0}}
