"""Reading what a user's message says about how the last intervention went.

A pending intervention is settled from the evidence that follows it, mainly the user's
next message. :class:`EvidenceReader` reads one message and returns an :class:`Evidence`:
an :class:`~memories.ranking.Outcome`, or ``None`` when the message says nothing about
the last intervention (a new request, a question, a new situation).

Two signals are combined, because neither is enough alone (vocabulary in
:mod:`graphs.evidence_phrases`):

* **Embedding similarity** to prototype phrases per outcome and to a ``none`` class: per
  class, the mean cosine similarity of the ``top_k`` nearest prototypes. It carries the
  paraphrases no keyword list anticipates.
* **Keyword cues** with negation handling. A cue adds a bonus to its class. A negated cue
  ("didn't help", "not done", "didn't get distracted") instead penalises every class of its
  polarity, so the embedder cannot read "I didn't finish" as a completion.

Mixed messages, on purpose:

* *A new request dominates.* "I finished breakfast, now I need to start my essay" or
  "I'm done with being sad, help me" read as ``None``: outcome cues are ignored and ``none``
  gets a bonus. So do a question, a habit ("always") and another time ("last year").
  Asking to go on with the same plan ("done, what's next?") is not a request.
* *Success and failure cues together*: the clause after the last turn ("but", "then", ...)
  decides ("I started but then got distracted" is a distraction); without such a turn the
  message is ambiguous and reads as ``None``.
* *Part of a task* ("some of", "halfway", "the first step"): "done" and "finished" count as
  progress, and completion is ruled out.

An outcome is returned only if it is the best class, its combined score clears
``threshold``, its own similarity clears ``similarity_floor`` (cues alone never decide) and
it beats the runner-up by ``margin``. When no cue backs it, the embedder alone must lead by
``no_cue_margin`` (over the raw similarities too), the message must have ``no_cue_min_words``
words ("ok" says too little) and no negation at all (embeddings barely see "not").
A wrong settlement teaches the agent the wrong thing, so doubt reads as ``None``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field

from graphs import evidence_phrases as vocab
from memories.errors import InvalidInput
from memories.ranking import OUTCOME_VALUE, Outcome

log = logging.getLogger(__name__)

POSITIVE = frozenset({Outcome.TASK_COMPLETED, Outcome.TASK_PROGRESS, Outcome.RE_ENGAGED})
NEGATIVE = frozenset({Outcome.DISTRACTED, Outcome.ABANDONED})
NONE = vocab.NONE
#: Every class the reader scores: the five settled outcomes and ``none``.
CLASSES: tuple[str, ...] = tuple(o.value for o in (*sorted(POSITIVE), *sorted(NEGATIVE))) + (NONE,)


class Evidence(BaseModel):
    """What one message says about how the last intervention went."""

    outcome: Outcome | None = Field(
        description="The outcome the message reports, or None when it says nothing about the last intervention.")
    confidence: float = Field(ge=0.0, le=1.0, description=(
        "How likely the reading is right, 0..1: the softmax probability of the outcome, or for None "
        "one minus that of the likeliest outcome."))
    cues: list[str] = Field(default_factory=list, description=(
        "Keyword cues found, e.g. 'task_completed:finished', 'not:positive:help', 'new:can you'."))
    scores: dict[str, float] = Field(default_factory=dict,
                                     description="Combined score per class (the outcomes and 'none'), for debugging.")

    @property
    def positive(self) -> bool:
        """Whether the message reports a success (completion, progress or re-engagement)."""
        return self.outcome in POSITIVE


_CUES = tuple((outcome, re.compile(rf"\b(?:{pattern})\b"), negatable) for outcome, pattern, negatable in vocab.CUES)
_NEGATOR = re.compile(vocab.NEGATOR)
_NOT_NEGATIONS = re.compile(vocab.NOT_NEGATIONS)
_NEGATED_ONLY = re.compile(vocab.NEGATED_ONLY)
_CLAUSE = re.compile(vocab.CLAUSE)
_TURN = re.compile(vocab.TURN)
_PARTIAL = re.compile(vocab.PARTIAL)
_NOT_OVER = re.compile(vocab.NOT_OVER)
_NEW_TOPIC = re.compile(vocab.NEW_TOPIC)
_CONTINUATION = re.compile(vocab.CONTINUATION)
_STARTING = re.compile(r"start(?:ed|ing)|began|begun")
_WINDOW_WORDS = 4  # how far back a negation reaches: "haven't really even started"


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").lower().split())


def _negated(text: str, start: int) -> bool:
    clause = _NOT_NEGATIONS.sub(" ", _CLAUSE.split(text[:start])[-1])
    return bool(_NEGATOR.search(" ".join(clause.split()[-_WINDOW_WORDS:])))


@dataclass
class CueReading:
    """Keyword evidence in one normalised message."""

    found: dict[Outcome, list[str]] = field(default_factory=dict)  # un-negated cues per outcome
    against_positive: list[str] = field(default_factory=list)  # negated success cues, overruled ones
    against_negative: list[str] = field(default_factory=list)  # negated failure cues, overruled ones
    new_topic: list[str] = field(default_factory=list)  # a request, a question, a habit, another time
    negation: bool = False  # any negation at all, cue or not
    partial: bool = False  # "some of", "half", "the first": whatever was done, it was not all
    conflict: bool = False  # success and failure cues with nothing to tell which came last

    def labels(self) -> list[str]:
        """Cues as short strings for logs."""
        out = [f"{o.value}:{w}" for o, words in self.found.items() for w in words]
        out += [f"not:positive:{w}" for w in self.against_positive]
        out += [f"not:negative:{w}" for w in self.against_negative]
        out += [f"new:{w}" for w in self.new_topic]
        return out + (["partial"] if self.partial else []) + (["conflict"] if self.conflict else [])


def read_cues(text: str) -> CueReading:
    """Find outcome cues (with negation), request cues and conflicts in a normalised message."""
    reading = CueReading()
    words = re.findall(r"[a-z0-9']+", _NOT_NEGATIONS.sub(" ", text))
    reading.negation = any(_NEGATOR.search(w) for w in words)
    hits: list[tuple[int, Outcome, str]] = []
    for outcome, pattern, negatable in _CUES:
        for m in pattern.finditer(text):
            if negatable and _negated(text, m.start()):
                (reading.against_positive if outcome in POSITIVE else reading.against_negative).append(m.group())
            else:
                hits.append((m.start(), outcome, m.group()))
    for m in _NEGATED_ONLY.finditer(text):
        if _negated(text, m.start()) and m.group() not in reading.against_positive:
            reading.against_positive.append(m.group())
    reading.against_negative += [m.group() for m in _NOT_OVER.finditer(text)]
    reading.partial = bool(_PARTIAL.search(text))
    if reading.partial:  # "finished the first part" is progress
        hits = [(s, Outcome.TASK_PROGRESS if o is Outcome.TASK_COMPLETED else o, w) for s, o, w in hits]
    if any(o in POSITIVE for _, o, _ in hits) and any(o in NEGATIVE for _, o, _ in hits):
        hits = _resolve_mixed(text, hits, reading)
    for _, outcome, word in sorted(hits, key=lambda h: h[0]):
        reading.found.setdefault(outcome, []).append(word)
    if not _CONTINUATION.search(text):
        reading.new_topic = [m.group() for m in _NEW_TOPIC.finditer(text)]
    return reading


def _resolve_mixed(text: str, hits: list[tuple[int, Outcome, str]],
                   reading: CueReading) -> list[tuple[int, Outcome, str]]:
    """Success and failure cues together: the cues after the last turn tell how it ended."""
    # "started watching a show": the start is the distraction's, not the task's.
    failures = [start for start, o, _ in hits if o in NEGATIVE]
    hits = [h for h in hits if not (_STARTING.fullmatch(h[2]) and any(
        0 < len(text[h[0]:f].split()) <= 3 for f in failures))]
    if not (any(o in POSITIVE for _, o, _ in hits) and any(o in NEGATIVE for _, o, _ in hits)):
        return hits
    for turn in reversed(list(_TURN.finditer(text))):
        after = {o in POSITIVE for start, o, _ in hits if start >= turn.end()}
        if len(after) == 1:
            ended_well = after.pop()
            overruled = [w for _, o, w in hits if (o in POSITIVE) != ended_well]
            (reading.against_negative if ended_well else reading.against_positive).extend(overruled)
            return [h for h in hits if (h[1] in POSITIVE) == ended_well]
        if after:
            break  # both kinds after the last turn: still ambiguous
    reading.conflict = True
    return hits


class EvidenceReader:
    """Reads a user's message as evidence about the last intervention (see the module docs)."""

    def __init__(self, embeddings: Embeddings, *, threshold: float = 0.42, margin: float = 0.04,
                 top_k: int = 3, cue_weight: float = 0.08, new_topic_weight: float = 0.12, veto: float = 0.3,
                 no_cue_margin: float = 0.1, no_cue_min_words: int = 3, similarity_floor: float = 0.3,
                 temperature: float = 0.05) -> None:
        self.embeddings = embeddings
        self.threshold = threshold  # combined score an outcome needs when a cue backs it
        self.margin = margin  # lead over the runner-up (any class, 'none' included)
        self.top_k = top_k
        self.cue_weight = cue_weight  # bonus per cue, at most two per class
        self.new_topic_weight = new_topic_weight
        self.veto = veto  # penalty a clear negation puts on its polarity
        self.no_cue_margin = no_cue_margin  # the embedder alone must lead by more
        self.no_cue_min_words = no_cue_min_words
        self.similarity_floor = similarity_floor
        self.temperature = temperature  # of the softmax behind `confidence`
        self._matrix: np.ndarray | None = None  # prototypes x dims, L2-normalised
        self._masks: list[np.ndarray] = []  # per class, which prototype rows are its own
        self._lock = asyncio.Lock()

    async def setup(self) -> None:
        """Embed the prototype phrases once, in one batch. Safe to call again."""
        async with self._lock:
            if self._matrix is not None:
                return
            texts = [t for c in CLASSES for t in vocab.PROTOTYPES[c]]
            owner = np.array([i for i, c in enumerate(CLASSES) for _ in vocab.PROTOTYPES[c]])
            matrix = _unit(np.asarray(await self.embeddings.aembed_documents(texts), dtype=np.float32))
            self._masks = [owner == i for i in range(len(CLASSES))]
            self._matrix = matrix
            log.debug("evidence prototypes embedded: %d phrases in %d classes", len(texts), len(CLASSES))

    def similarities(self, vector: np.ndarray) -> dict[str, float]:
        """Per class, the mean cosine similarity of a message vector to its top-k prototypes."""
        if self._matrix is None:
            raise RuntimeError("EvidenceReader.setup() has not run")
        if vector.shape != (self._matrix.shape[1],) or not np.isfinite(vector).all():
            raise InvalidInput(f"expected {self._matrix.shape[1]} finite floats, got shape {vector.shape}",
                               field="vector")
        sims = self._matrix @ _unit(vector.astype(np.float32))
        out: dict[str, float] = {}
        for c, mask in zip(CLASSES, self._masks, strict=True):
            row = sims[mask]
            k = min(self.top_k, row.size)
            out[c] = float(np.partition(row, row.size - k)[-k:].mean())
        return out

    async def read(self, message: str, vector: list[float] | None = None) -> Evidence:
        """Read one message; ``vector`` is its embedding when the caller already has it.

        Embeds the message (``aembed_query``) only when no vector is given; runs ``setup``
        on first use. An empty or blank message reads as ``None``.
        """
        text = normalise(message)
        if not text:
            return Evidence(outcome=None, confidence=1.0)
        if self._matrix is None:
            await self.setup()
        if vector is None:
            vector = await self.embeddings.aembed_query(message)
        sims = self.similarities(np.asarray(vector, dtype=np.float32))
        cues = read_cues(text)
        scores = self._combine(sims, cues)
        outcome, confidence = self._decide(text, sims, scores, cues)
        return Evidence(outcome=outcome, confidence=round(confidence, 4), cues=cues.labels(),
                        scores={c: round(s, 4) for c, s in scores.items()})

    def _combine(self, sims: dict[str, float], cues: CueReading) -> dict[str, float]:
        scores = dict(sims)
        for outcome, words in ({} if cues.new_topic else cues.found).items():
            scores[outcome.value] += self.cue_weight * min(len(words), 2)
        # Only when nothing un-negated of that polarity is left: "I didn't get distracted,
        # finished it" is still a completion.
        if cues.against_positive and not POSITIVE & cues.found.keys():
            for o in POSITIVE:
                scores[o.value] -= self.veto
        if cues.against_negative and not NEGATIVE & cues.found.keys():
            for o in NEGATIVE:
                scores[o.value] -= self.veto
        if cues.partial:
            scores[Outcome.TASK_COMPLETED.value] -= self.veto
        if cues.new_topic:
            scores[NONE] += self.new_topic_weight
        return scores

    def _decide(self, text: str, sims: dict[str, float], scores: dict[str, float],
                cues: CueReading) -> tuple[Outcome | None, float]:
        values = np.array([scores[c] for c in CLASSES]) / self.temperature
        probs = np.exp(values - values.max())
        probs /= probs.sum()
        ranked = sorted(CLASSES, key=scores.__getitem__, reverse=True)
        best, runner_up = ranked[0], ranked[1]
        likeliest = max((c for c in CLASSES if c != NONE), key=scores.__getitem__)
        no_outcome = 1.0 - float(probs[CLASSES.index(likeliest)])
        if best == NONE or cues.conflict:
            return None, no_outcome
        outcome = Outcome(best)
        backed = outcome in cues.found and not cues.new_topic
        lead = scores[best] - scores[runner_up]
        if scores[best] < self.threshold or sims[best] < self.similarity_floor:
            return None, no_outcome
        if lead < self.margin:
            # Two outcomes of the same polarity neck and neck ("that helped, I made progress"):
            # which one is unclear, whether it went well is not. Settle on the lower value of
            # the two, if together they lead everything of the other polarity and 'none'.
            pair = {Outcome(best), Outcome(runner_up)} if runner_up != NONE else set()
            same_side = pair <= POSITIVE or pair <= NEGATIVE
            others = max(v for c, v in scores.items() if c not in (best, runner_up))
            if not (len(pair) == 2 and same_side and scores[runner_up] - others >= self.margin
                    and pair & cues.found.keys() and not cues.new_topic):
                return None, no_outcome
            outcome = min(pair, key=lambda o: OUTCOME_VALUE[o] or 0.0)
            return outcome, float(probs[CLASSES.index(best)] + probs[CLASSES.index(runner_up)])
        if not backed and cues.negation:  # embeddings barely see "not": no verdict on their own
            return None, no_outcome
        if not backed:
            # The embedder alone decides only when it is clear on its own: a veto may rule a
            # class out, but must not manufacture a lead for its neighbour.
            raw_lead = sims[best] - max(v for c, v in sims.items() if c != best)
            if min(lead, raw_lead) < self.no_cue_margin or len(text.split()) < self.no_cue_min_words:  # "ok"
                return None, no_outcome
        return outcome, float(probs[CLASSES.index(best)])


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
