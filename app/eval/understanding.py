"""``sam2voice eval understanding``: the understanding step measured on the corpus splits,
with per-act precision and recall, outcome signs and safety figures (held-out by default)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel

from graphs.understanding.acts import Act, Sign, Understanding
from graphs.understanding.corpus import Labelled, Split, load_corpus
from graphs.understanding.evaluate import read_all, score
from graphs.understanding.model import merge, read_with_model
from graphs.understanding.reader import UnderstandingReader
from graphs.understanding.train import embed_all

TARGETS = {"outcome.right_sign": (">=", 0.95), "outcome.wrong_sign": ("<=", 0.01),
           "outcome.unrelated_settle_nothing": (">=", 0.95), "crisis.explicit_recall": (">=", 1.0),
           "crisis.indirect_recall": (">=", 0.95), "crisis.false_alarms": ("<=", 0.02)}


#: Follow-up replies labelled for the earlier outcome reader, by other writers; never trained on.
OUTSIDE_REPLIES = Path(__file__).resolve().parents[2] / "tests" / "data" / "evidence_labelled.json"
_SIGN_OF = {"task_completed": Sign.HELPED, "task_progress": Sign.HELPED, "re_engaged": Sign.HELPED,
            "distracted": Sign.NOT_HELPED, "abandoned": Sign.NOT_HELPED, None: Sign.NONE}


def outside_replies(path: Path = OUTSIDE_REPLIES) -> list[Labelled]:
    """The outside replies as corpus items (only their sign is labelled)."""
    if not path.exists():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))["examples"]
    return [Labelled(text=r["text"], act=Act.OUTCOME if r["label"] else Act.STRUGGLE, outcome=_SIGN_OF[r["label"]],
                     source=path.name) for r in rows]


def check_targets(result: dict[str, Any]) -> dict[str, bool]:
    """Which of the issue's held-out targets a split's figures meet."""
    out = {}
    for path, (op, bound) in TARGETS.items():
        group, key = path.split(".")
        value = result[group][key]
        out[path] = value is not None and (value >= bound if op == ">=" else value <= bound)
    return out


async def read_merged(reader: UnderstandingReader, items: list[Labelled], vectors: np.ndarray,
                      model: BaseChatModel) -> list[Understanding]:
    """Readings with the chat model's merged in, as the graph does with a key."""
    out = []
    for item, offline in zip(items, read_all(reader, items, vectors), strict=True):
        reading = None if offline.crisis else await read_with_model(model, item.text)
        out.append(merge(offline, reading) if reading is not None else offline)
    return out


async def run_understanding_eval(splits: list[Split], *, model: BaseChatModel | None = None) -> dict[str, Any]:
    """The figures for each split, plus the reading time per message (heads and rules only).
    With ``model`` (Gemini), every message is also read by it and merged, as in the graph."""
    corpus = load_corpus(heldout=Split.HELDOUT in splits)
    reader = UnderstandingReader()
    embedder = reader.encoder
    out: dict[str, Any] = {"weights": reader.heads.meta, "thresholds": reader.thresholds,
                           "model": type(model).__name__ if model else None}
    for split in splits:
        items = corpus[split]
        vectors = await embed_all(embedder, [i.text for i in items])
        start = time.perf_counter()
        readings = await read_merged(reader, items, vectors, model) if model else read_all(reader, items, vectors)
        per_message_ms = (time.perf_counter() - start) * 1000 / max(len(items), 1)
        result = score(readings, items)
        result["read_ms_mean"] = round(per_message_ms, 4)
        result["targets_met"] = check_targets(result)
        out[split.value] = result
    if replies := outside_replies():
        vectors = await embed_all(embedder, [i.text for i in replies])
        outcome = score(read_all(reader, replies, vectors), replies)["outcome"]
        out["outside_replies"] = {"messages": len(replies), **outcome}
    timings = []
    probe = corpus[Split.VALIDATION][:200]
    vectors = np.asarray(await embed_all(embedder, [i.text for i in probe]))
    for item, vector in zip(probe, vectors, strict=True):
        start = time.perf_counter()
        reader.read(item.text, vector)
        timings.append((time.perf_counter() - start) * 1000)
    out["read_ms_p95"] = round(float(np.percentile(timings, 95)), 4)
    return out
