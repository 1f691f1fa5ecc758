"""Training the understanding heads from the corpus (``sam2voice train understanding``).

Multinomial logistic regression, written here in numpy rather than taken from
scikit-learn: it is thirty lines, the runtime needs only the weight matrices, and the
project does not grow a dependency for a training script. Full-batch Adam with L2
regularisation and balanced class weights (a rare act such as a crisis counts as much as
a common one). Thresholds are then tuned on the validation split only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from graphs.understanding import features
from graphs.understanding.corpus import Labelled, Split, load_corpus
from graphs.understanding.heads import HEADS, WEIGHTS, Head, Neighbours, save_heads
from memories.records import MAX_TEXT_CHARS

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
LEXICAL_SCALE = 1.0  # weight of the lexical block next to the unit-length embedding
L2 = 3e-4
STEPS = 400


def fit(x: np.ndarray, y: np.ndarray, *, sigmoid: bool, l2: float = L2, steps: int = STEPS,
        lr: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of a linear classifier for targets ``y`` (rows x classes, 0/1)."""
    n, d = x.shape
    classes = y.shape[1]
    if sigmoid:  # per-class balance: positives and negatives weigh the same in total
        pos = np.maximum(y.sum(axis=0), 1.0)
        weight = np.where(y > 0, n / (2 * pos), n / (2 * np.maximum(n - pos, 1.0)))
    else:
        counts = np.maximum(y.sum(axis=0), 1.0)
        weight = (y @ (n / (classes * counts)))[:, None]
    w = np.zeros((d, classes), dtype=np.float32)
    b = np.zeros(classes, dtype=np.float32)
    m_w, v_w, m_b, v_b = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        logits = x @ w + b
        if sigmoid:
            p = 1.0 / (1.0 + np.exp(-logits))
        else:
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        g = (p - y) * weight / n
        grad_w = x.T @ g + l2 * w
        grad_b = g.sum(axis=0)
        for param, grad, m, v in ((w, grad_w, m_w, v_w), (b, grad_b, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)
    return w, b


def targets(items: list[Labelled], head: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows that teach ``head`` and their 0/1 targets."""
    rows, ys = [], []
    for i, item in enumerate(items):
        y = np.zeros(len(classes), dtype=np.float32)
        if head == "act":
            y[classes.index(item.act.value)] = 1
        elif head == "also":
            for act in {item.act, *item.also}:
                y[classes.index(act.value)] = 1
        elif head == "danger":
            y[0] = float(item.act.value == "crisis")
        elif head == "polarity":
            if item.outcome.value not in ("helped", "not_helped"):
                continue
            y[0] = float(item.outcome.value == "helped")
        elif head == "sign":
            y[classes.index(item.outcome.value)] = 1
        else:
            value = getattr(item, head)
            if value is None:
                continue
            y[classes.index(value.value)] = 1
        rows.append(i)
        ys.append(y)
    return np.array(rows, dtype=np.int64), np.array(ys, dtype=np.float32)


async def embed_all(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    """Unit-length embeddings of the corpus texts, in batches."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), 64):
        vectors.extend(await embeddings.aembed_documents([t[:MAX_TEXT_CHARS] for t in texts[start:start + 64]]))
    array = np.asarray(vectors, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def design(vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    """The heads' input: embedding, then the scaled lexical block."""
    return np.hstack([vectors, LEXICAL_SCALE * features.dense(texts)])


def train_heads(items: list[Labelled], vectors: np.ndarray) -> dict[str, Head]:
    """Fit every head on ``items`` (their embeddings in ``vectors``)."""
    x = design(vectors, [i.text for i in items])
    dims = vectors.shape[1]
    heads: dict[str, Head] = {}
    for name, (classes, sigmoid) in HEADS.items():
        rows, y = targets(items, name, classes)
        w, b = fit(x[rows], y, sigmoid=sigmoid)
        heads[name] = Head(classes, sigmoid, w[:dims], w[dims:] * LEXICAL_SCALE, b)
    return heads


async def train_understanding(embeddings: Embeddings, *, model_id: str, out: Path = WEIGHTS,
                              progress: Progress | None = None) -> dict[str, Any]:
    """Train on the train split, tune thresholds on validation, save; returns a summary."""
    from graphs.understanding.evaluate import tune_thresholds  # the reader needs the heads first

    say = progress or (lambda _m: None)
    start = time.perf_counter()
    corpus = load_corpus(heldout=False)
    train, validation = corpus[Split.TRAIN], corpus[Split.VALIDATION]
    say(f"embedding {len(train) + len(validation)} messages (train {len(train)}, validation {len(validation)})")
    vectors = await embed_all(embeddings, [i.text for i in train])
    val_vectors = await embed_all(embeddings, [i.text for i in validation])
    say(f"fitting {len(HEADS)} heads on {vectors.shape[1]} + {features.BUCKETS} features")
    heads = train_heads(train, vectors)
    neighbours = Neighbours(vectors, np.array([i.act.value == "crisis" for i in train]))
    say("tuning thresholds on the validation split")
    thresholds = tune_thresholds(heads, validation, val_vectors, dims=vectors.shape[1], neighbours=neighbours)
    meta = {"buckets": features.BUCKETS, "dims": int(vectors.shape[1]), "embedding": model_id,
            "classes": {n: list(c) for n, (c, _) in HEADS.items()}, "train": len(train),
            "validation": len(validation), "trained_at": time.strftime("%Y-%m-%d")}
    save_heads(out, heads, thresholds, meta, neighbours)
    say(f"saved {out} ({out.stat().st_size // 1024} KB)")
    return {"weights": str(out), "thresholds": thresholds, **meta, "seconds": round(time.perf_counter() - start, 1)}
