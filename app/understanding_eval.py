"""``sam2voice eval understanding``: the understanding step measured on the corpus splits,
with per-act precision and recall, outcome signs and safety figures (held-out by default)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from graphs.understanding.corpus import Split, load_corpus
from graphs.understanding.evaluate import read_all, score
from graphs.understanding.reader import UnderstandingReader
from graphs.understanding.train import embed_all
from memories.embeddings import LocalMiniLMEmbeddings

TARGETS = {"outcome.right_sign": (">=", 0.95), "outcome.wrong_sign": ("<=", 0.01),
           "outcome.unrelated_settle_nothing": (">=", 0.95), "crisis.explicit_recall": (">=", 1.0),
           "crisis.indirect_recall": (">=", 0.95), "crisis.false_alarms": ("<=", 0.02)}


def check_targets(result: dict[str, Any]) -> dict[str, bool]:
    """Which of the issue's held-out targets a split's figures meet."""
    out = {}
    for path, (op, bound) in TARGETS.items():
        group, key = path.split(".")
        value = result[group][key]
        out[path] = value is not None and (value >= bound if op == ">=" else value <= bound)
    return out


async def run_understanding_eval(splits: list[Split]) -> dict[str, Any]:
    """The figures for each split, plus the reading time per message (heads and rules only)."""
    corpus = load_corpus()
    reader = UnderstandingReader()
    embedder = LocalMiniLMEmbeddings()
    out: dict[str, Any] = {"weights": reader.heads.meta, "thresholds": reader.thresholds}
    for split in splits:
        items = corpus[split]
        vectors = await embed_all(embedder, [i.text for i in items])
        start = time.perf_counter()
        readings = read_all(reader, items, vectors)
        per_message_ms = (time.perf_counter() - start) * 1000 / max(len(items), 1)
        result = score(readings, items)
        result["read_ms_mean"] = round(per_message_ms, 4)
        result["targets_met"] = check_targets(result)
        out[split.value] = result
    timings = []
    probe = corpus[Split.VALIDATION][:200]
    vectors = np.asarray(await embed_all(embedder, [i.text for i in probe]))
    for item, vector in zip(probe, vectors, strict=True):
        start = time.perf_counter()
        reader.read(item.text, vector)
        timings.append((time.perf_counter() - start) * 1000)
    out["read_ms_p95"] = round(float(np.percentile(timings, 95)), 4)
    return out
