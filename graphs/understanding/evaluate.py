"""Measuring the understanding step on a split of the corpus (``sam2voice eval understanding``),
and tuning its thresholds on the validation split (never on held-out)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from graphs.understanding import safety
from graphs.understanding.acts import ACTS, Act, Sign, Understanding
from graphs.understanding.corpus import Labelled
from graphs.understanding.heads import Head, Heads, Neighbours
from graphs.understanding.reader import DEFAULT_THRESHOLDS, UnderstandingReader, danger_gate

SETTLED = (Sign.HELPED, Sign.NOT_HELPED)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def score(readings: list[Understanding], items: list[Labelled]) -> dict[str, Any]:
    """Every figure the issue names, for readings of ``items``."""
    per_act: dict[str, dict[str, Any]] = {}
    for act in ACTS:
        tp = sum(1 for r, i in zip(readings, items, strict=True) if r.act.value == act and i.act.value == act)
        predicted = sum(1 for r in readings if r.act.value == act)
        actual = sum(1 for i in items if i.act.value == act)
        per_act[act] = {"precision": _ratio(tp, predicted), "recall": _ratio(tp, actual), "support": actual}
    pairs = list(zip(readings, items, strict=True))
    replies = [(r, i) for r, i in pairs if i.outcome.value in ("helped", "not_helped")]
    right = sum(1 for r, i in replies if r.sign.value == i.outcome.value)
    wrong = sum(1 for r, i in replies if r.sign in SETTLED and r.sign.value != i.outcome.value)
    unrelated = [(r, i) for r, i in pairs if i.outcome is Sign.NONE]
    settled_unrelated = sum(1 for r, _ in unrelated if r.sign in SETTLED)
    crisis = [(r, i) for r, i in pairs if i.act is Act.CRISIS]
    explicit = [(r, i) for r, i in crisis if i.crisis == "explicit"]
    indirect = [(r, i) for r, i in crisis if i.crisis == "indirect"]
    calm = [(r, i) for r, i in pairs if i.act is not Act.CRISIS]
    hyperbole = [(r, i) for r, i in calm if i.hyperbole]
    mixed = [(r, i) for r, i in pairs if i.also]
    also_hit = sum(len(set(i.also) & ({r.act, *r.also})) for r, i in mixed)
    also_total = sum(len(i.also) for _, i in mixed)
    progress = [(r, i) for r, i in pairs if i.steps is not None and r.has(Act.PROGRESS)]
    steps_right = sum(1 for r, i in progress if (i.steps == "all" and r.all_done) or
                      (isinstance(i.steps, int) and not r.all_done and (r.steps or 1) == i.steps))
    requests = [(r, i) for r, i in pairs if i.act is Act.REQUEST and r.act is Act.REQUEST and i.request]
    return {
        "messages": len(items),
        "act_accuracy": _ratio(sum(1 for r, i in pairs if r.act is i.act), len(items)),
        "per_act": per_act,
        "outcome": {
            "replies": len(replies), "right_sign": _ratio(right, len(replies)),
            "wrong_sign": _ratio(wrong, len(replies)), "unread": _ratio(len(replies) - right - wrong, len(replies)),
            "unrelated": len(unrelated), "unrelated_settle_nothing": _ratio(len(unrelated) - settled_unrelated,
                                                                            len(unrelated)),
        },
        "crisis": {
            "explicit": len(explicit), "explicit_recall": _ratio(sum(r.crisis for r, _ in explicit), len(explicit)),
            "indirect": len(indirect), "indirect_recall": _ratio(sum(r.crisis for r, _ in indirect), len(indirect)),
            "hyperbole": len(hyperbole),
            "hyperbole_false_alarms": _ratio(sum(r.crisis for r, _ in hyperbole), len(hyperbole)),
            "non_crisis": len(calm), "false_alarms": _ratio(sum(r.crisis for r, _ in calm), len(calm)),
            "missed": [i.text for r, i in crisis if not r.crisis][:20],
        },
        "mixed": {"messages": len(mixed), "other_act_found": _ratio(also_hit, also_total)},
        "steps_accuracy": _ratio(steps_right, len(progress)),
        "request_kind_accuracy": _ratio(sum(1 for r, i in requests if r.request == i.request), len(requests)),
        "by_style": _by_style(replies),
    }


def _by_style(replies: list[tuple[Understanding, Labelled]]) -> dict[str, float | None]:
    """Right-sign share of outcome replies per writing style."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r, i in replies:
        for style in i.style or ["plain"]:
            total[style] += 1
            right[style] += r.sign.value == i.outcome.value
    return {s: _ratio(right[s], total[s]) for s in sorted(total)}


def read_all(reader: UnderstandingReader, items: list[Labelled], vectors: np.ndarray) -> list[Understanding]:
    """The reader's reading of every item."""
    return [reader.read(i.text, v) for i, v in zip(items, vectors, strict=True)]


def tune_thresholds(heads: dict[str, Head], items: list[Labelled], vectors: np.ndarray, *, dims: int,
                    neighbours: Neighbours | None = None) -> dict[str, float]:
    """Thresholds chosen on validation: the pair of crisis thresholds (danger head, neighbour
    score) that finds the most crises while false alarms stay at most 1 %, the settle threshold
    for messages that are not plainly about the last suggestion as low as 2 % of unrelated
    messages settled allows, the polarity threshold
    for those that are as low as a wrong sign allows (at most 1 %, else the fewest
    wrong signs). The threshold of a second act stays
    at its default: a false second act sends a message down a path nobody asked for."""
    chosen = dict(DEFAULT_THRESHOLDS)

    def run(**overrides: float) -> dict[str, Any]:
        reader = UnderstandingReader(Heads(heads=heads, thresholds={**chosen, **overrides}, dims=dims, meta={},
                                           neighbours=neighbours))
        return score(read_all(reader, items, vectors), items)

    chosen.update(_crisis_thresholds(Heads(heads=heads, thresholds=chosen, dims=dims, meta={},
                                           neighbours=neighbours), items, vectors))
    for t in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        result = run(settle=t)["outcome"]
        if (result["unrelated_settle_nothing"] or 1) >= 0.98:
            chosen["settle"] = t
            break
    fewest: tuple[float, float] | None = None  # (wrong sign, threshold) when no threshold reaches 1 %
    for t in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99):
        wrong = run(polarity=t)["outcome"]["wrong_sign"] or 0.0
        if wrong <= 0.01:
            chosen["polarity"] = t
            break
        if fewest is None or wrong < fewest[0]:
            fewest = (wrong, t)
    else:
        if fewest is not None:  # a wrong sign teaches the memory the wrong thing: as few as can be
            chosen["polarity"] = fewest[1]
    return chosen


def _crisis_thresholds(heads: Heads, items: list[Labelled], vectors: np.ndarray) -> dict[str, float]:
    """The (head, neighbour) thresholds with the highest crisis recall at <= 1 % false alarms on
    ``items``; ties go to the higher thresholds (fewer false alarms)."""
    rows = []
    for item, vector in zip(items, vectors, strict=True):
        probs = heads.read(np.asarray(vector, dtype=np.float32), item.text)
        rows.append((item.act is Act.CRISIS, safety.explicit_crisis(item.text) is not None,
                     probs["danger"]["crisis"], probs["neighbours"]["crisis"], safety.figurative(item.text)))
    crises = sum(1 for r in rows if r[0])
    calm = len(rows) - crises
    near_grid = (1.0,) if heads.neighbours is None else (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 1.0)
    best: tuple[float, float, float] | None = None
    for t_head in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.01):
        for t_near in near_grid:
            th = {**heads.thresholds, "crisis": t_head, "crisis_near": t_near}
            said = [explicit or danger_gate(p, near, fig, th) for _, explicit, p, near, fig in rows]
            alarms = sum(1 for s, r in zip(said, rows, strict=True) if s and not r[0])
            if calm and alarms / calm > 0.01:
                continue
            found = sum(1 for s, r in zip(said, rows, strict=True) if s and r[0])
            key = (found / max(crises, 1), t_head, t_near)
            if best is None or key[0] > best[0] or (key[0] == best[0] and key[1:] > best[1:]):
                best = key
    if best is None:
        return {"crisis": 0.98, "crisis_near": 1.0}
    return {"crisis": best[1], "crisis_near": best[2]}
