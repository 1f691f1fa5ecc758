"""The trained heads: linear classifiers over the turn's embedding and its lexical features.

Each head is a softmax (or, for the ``also`` head, independent sigmoids) over
``[embedding, hashed lexical features]``. Danger has a second, non-linear signal next to its
head: how much closer the message's embedding sits to the training corpus's crisis messages
than to its other messages (the nearest few of each). Measured leaving one writer's file out
at a time, that neighbour score found far more of the indirect crises ("I keep looking at the
bridge on my way home") than the linear head at the same false-alarm rate, because indirect
crises are many small islands of meaning a single hyperplane cuts badly (docs/benchmarks.md).
The weights are trained from the corpus by ``sam2voice train understanding``
(``graphs.understanding.train``) and shipped as ``weights.npz``; reading a message is a few
small dot products (microseconds), so the understanding step costs nothing next to the
embedding the turn computes anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from graphs.understanding import features
from graphs.understanding.acts import ACTS, CRISIS_KINDS, QUESTIONS, REQUESTS, SIGNS

WEIGHTS = Path(__file__).with_name("weights.npz")
#: Every head: its classes and whether its outputs are independent (sigmoid) or exclusive (softmax).
HEADS: dict[str, tuple[tuple[str, ...], bool]] = {
    "act": (ACTS, False),
    "also": (ACTS, True),
    "sign": (SIGNS, False),
    "request": (REQUESTS, False),
    "question": (QUESTIONS, False),
    "crisis_kind": (CRISIS_KINDS, False),
    "danger": (("crisis",), True),
    # which way an answer about the last suggestion went, learnt from answers only
    "polarity": (("helped",), True),  # crisis or not, on its own: better calibrated than the act softmax
}


class WeightsMissing(RuntimeError):
    """The shipped weights file is missing or does not match this code (retrain it)."""


@dataclass(frozen=True)
class Head:
    """One linear head."""

    classes: tuple[str, ...]
    sigmoid: bool
    w_emb: np.ndarray  # dims x classes
    w_lex: np.ndarray  # buckets x classes
    bias: np.ndarray  # classes

    def probabilities(self, vector: np.ndarray, lex: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        """Class probabilities of one message."""
        index, weights = lex
        logits = vector @ self.w_emb + weights @ self.w_lex[index] + self.bias
        if self.sigmoid:
            probs = 1.0 / (1.0 + np.exp(-logits))
        else:
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
        return {c: float(p) for c, p in zip(self.classes, probs, strict=True)}


NEIGHBOURS = 5  # nearest crisis and nearest other messages averaged (5 was best of 3/5/10 leaving a writer out)


@dataclass(frozen=True)
class Neighbours:
    """The training messages' embeddings and whether each was a crisis (the danger neighbour score)."""

    vectors: np.ndarray  # messages x dims, unit length
    crisis: np.ndarray  # messages, bool

    def score(self, unit: np.ndarray) -> float:
        """Mean similarity of the nearest crisis messages minus that of the nearest other ones."""
        sims = self.vectors @ unit
        k = NEIGHBOURS
        near_crisis = np.partition(sims[self.crisis], -k)[-k:].mean()
        near_other = np.partition(sims[~self.crisis], -k)[-k:].mean()
        return float(near_crisis - near_other)


@dataclass(frozen=True)
class Heads:
    """Every head plus the decision thresholds tuned on the validation split."""

    heads: dict[str, Head]
    thresholds: dict[str, float]
    dims: int
    meta: dict[str, object]
    neighbours: Neighbours | None = None

    def read(self, vector: np.ndarray, text: str) -> dict[str, dict[str, float]]:
        """Every head's probabilities for one message (its embedding and its text), plus the
        danger neighbour score as ``probs["neighbours"]["crisis"]`` (0 without neighbours)."""
        unit = vector.astype(np.float32)
        unit = unit / max(float(np.linalg.norm(unit)), 1e-12)
        lex = features.lexical(text)
        probs = {name: head.probabilities(unit, lex) for name, head in self.heads.items()}
        probs["neighbours"] = {"crisis": self.neighbours.score(unit) if self.neighbours is not None else 0.0}
        return probs


def save_heads(path: Path, heads: dict[str, Head], thresholds: dict[str, float], meta: dict[str, object],
               neighbours: Neighbours | None = None) -> None:
    """Write the heads as one compressed ``.npz`` (float16 weights; neighbour embeddings as int8,
    which keeps cosine similarities to within ~0.005; about 2 MB in all)."""
    arrays: dict[str, np.ndarray] = {}
    if neighbours is not None:
        scale = np.abs(neighbours.vectors).max(axis=1, keepdims=True) / 127.0
        arrays["neighbours.int8"] = np.round(neighbours.vectors / scale).astype(np.int8)
        arrays["neighbours.scale"] = scale.astype(np.float32)
        arrays["neighbours.crisis"] = neighbours.crisis.astype(np.bool_)
    for name, head in heads.items():
        arrays[f"{name}.w_emb"] = head.w_emb.astype(np.float16)
        arrays[f"{name}.w_lex"] = head.w_lex.astype(np.float16)
        arrays[f"{name}.bias"] = head.bias.astype(np.float32)
    arrays["meta"] = np.frombuffer(json.dumps({**meta, "thresholds": thresholds}).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


@cache
def load_heads(path: Path = WEIGHTS) -> Heads:
    """The shipped heads (read once per process)."""
    if not path.exists():
        raise WeightsMissing(f"{path} is missing: run `sam2voice train understanding`")
    data = np.load(path)
    meta = json.loads(bytes(data["meta"]).decode())
    if meta.get("buckets") != features.BUCKETS:
        raise WeightsMissing(f"{path} was trained with {meta.get('buckets')} feature buckets, this code uses "
                             f"{features.BUCKETS}: run `sam2voice train understanding`")
    heads = {}
    for name, (classes, sigmoid) in HEADS.items():
        if list(meta["classes"][name]) != list(classes):
            raise WeightsMissing(f"{path}: the {name} head's classes changed: run `sam2voice train understanding`")
        heads[name] = Head(classes, sigmoid, data[f"{name}.w_emb"].astype(np.float32),
                           data[f"{name}.w_lex"].astype(np.float32), data[f"{name}.bias"])
    neighbours = None
    if "neighbours.int8" in data:
        vectors = data["neighbours.int8"].astype(np.float32) * data["neighbours.scale"]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        neighbours = Neighbours(vectors, data["neighbours.crisis"].astype(bool))
    return Heads(heads=heads, thresholds=dict(meta.pop("thresholds")), dims=int(meta["dims"]), meta=meta,
                 neighbours=neighbours)
