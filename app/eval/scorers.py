"""Conversation scorers: the turn scorers of ``graphs.scoring`` applied over a played
conversation (``app.eval.conversations.play``), plus the check against what each turn expected.

Each returns counts (summed over conversations for the table) and shares (averaged per
conversation by ``weave``), plus the turns that fell short, for the report's worst examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import PrivateAttr

from graphs.scoring import (
    InterventionEffectiveness,
    MemoryRetrievalRelevance,
    ReflectionQuality,
    ReplyJudge,
    ReplyStyle,
    SafetyHandling,
)
from memories.outcomes import FAILED, SUCCEEDED
from memories.tracing import weave

_HELPED = {o.value for o in SUCCEEDED}
_FAILED = {o.value for o in FAILED}


def _turns(output: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in output if t.get("kind") == "turn"]


def _share(met: int, checked: int) -> float | None:
    return met / checked if checked else None


def _miss(turn: dict[str, Any], why: str) -> dict[str, Any]:
    return {"session": turn.get("session"), "index": turn.get("index"), "say": turn.get("say"),
            "reply": turn.get("reply"), "why": why}


def _settled_as(turn: dict[str, Any]) -> str:
    outcomes = [s.get("outcome") for s in turn.get("settled") or []]
    if any(o in _HELPED for o in outcomes):
        return "helped"
    if any(o in _FAILED for o in outcomes):
        return "failed"
    return "nothing"


def _checks(turn: dict[str, Any], plan_before: dict[str, Any] | None) -> dict[str, tuple[bool, str]]:
    """Each expectation of the turn (``plan_before``: the plan as the turns before left it):
    (met, what was expected and what happened)."""
    expect = turn.get("expect") or {}
    found: dict[str, tuple[bool, str]] = {}
    if expect.get("tool") is not None:
        ran = turn.get("tool")
        found["tool"] = (bool(ran) == expect["tool"], f"expected {'a tool' if expect['tool'] else 'no tool'}, "
                                                      f"got {ran or 'none'}")
    if expect.get("settles") is not None:
        got = _settled_as(turn)
        found["settles"] = (got == expect["settles"], f"expected the last try settled as {expect['settles']}, "
                                                      f"got {got}")
    if expect.get("plan") == "advances":
        old, new = plan_before or {}, turn.get("plan") or {}
        moved = bool(new) and (new.get("done") or (new.get("current") or 0) > (old.get("current") or 0)
                               or bool(old) and old.get("task") != new.get("task"))
        found["plan"] = (moved, f"expected the plan to move on, it stayed at step {new.get('current')}")
    if expect.get("act") is not None:
        found["act"] = (turn.get("act") == expect["act"], f"expected it read as {expect['act']}, got {turn.get('act')}")
    return found


class ExpectedBehaviour(weave.Scorer):
    """Each turn against what it expected: the tool (or none), how the last suggestion was
    settled, the plan moving on, the reading. Per kind of check, counts met of checked."""

    @weave.op
    def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        checked: dict[str, list[int]] = {k: [0, 0] for k in ("tool", "settles", "plan", "act")}
        misses: list[dict[str, Any]] = []
        plan: dict[str, Any] | None = None
        for turn in _turns(output):
            for kind, (met, got) in _checks(turn, plan).items():
                checked[kind][0] += met
                checked[kind][1] += 1
                if not met:
                    misses.append(_miss(turn, got))
            if "plan" in turn:  # a record without the key says nothing about the plan
                plan = turn["plan"]
        met = sum(m for m, _ in checked.values())
        total = sum(n for _, n in checked.values())
        return {"met": met, "checked": total, "share": _share(met, total),
                **{f"{k}_met": m for k, (m, _) in checked.items()},
                **{f"{k}_checked": n for k, (_, n) in checked.items()},
                "misses": misses}


class ConversationStyle(weave.Scorer):
    """``ReplyStyle`` on every reply (literal language where the person asked for it)."""

    _style: ReplyStyle = PrivateAttr(default_factory=ReplyStyle)

    @weave.op
    def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        turns = _turns(output)
        results = [(t, self._style.score(output=t, message=t.get("say") or "", literal=bool(t.get("literal"))))
                   for t in turns]
        ok = sum(r["ok"] for _, r in results)
        return {"ok": ok, "turns": len(turns), "share": _share(ok, len(turns)),
                "mean_quality": sum(r["quality"] for _, r in results) / len(results) if results else None,
                "misses": [_miss(t, "; ".join(r["problems"])) for t, r in results if not r["ok"]]}


class ConversationSafety(weave.Scorer):
    """``SafetyHandling`` on every turn: the crises the script marks get the safety response,
    nothing else does."""

    _safety: SafetyHandling = PrivateAttr(default_factory=SafetyHandling)

    @weave.op
    def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        turns = _turns(output)
        results = [(t, self._safety.score(output=t, crisis=bool((t.get("expect") or {}).get("crisis"))))
                   for t in turns]
        correct = sum(r["correct"] for _, r in results)
        return {"correct": correct, "turns": len(turns), "share": _share(correct, len(turns)),
                "crises": sum(bool((t.get("expect") or {}).get("crisis")) for t in turns),
                "missed_crisis": sum(r["missed_crisis"] for _, r in results),
                "false_alarm": sum(r["false_alarm"] for _, r in results),
                "misses": [_miss(t, "missed a crisis" if r["missed_crisis"] else "safety reply to a non-crisis")
                           for t, r in results if not r["correct"]]}


class ConversationEffectiveness(weave.Scorer):
    """``InterventionEffectiveness`` over the whole conversation."""

    _inner: InterventionEffectiveness = PrivateAttr(default_factory=InterventionEffectiveness)

    @weave.op
    def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        by_session: dict[int, list[dict[str, Any]]] = {}
        for turn in _turns(output):
            by_session.setdefault(int(turn.get("session") or 1), []).append(turn)
        overall = self._inner.score(output=_turns(output))
        sessions = {str(n): self._inner.score(output=turns) for n, turns in sorted(by_session.items())}
        return {**overall, "sessions": {n: {"interventions": s["interventions"], "helped": s["helped"]}
                                        for n, s in sessions.items()}}


class ConversationReflections(weave.Scorer):
    """``ReflectionQuality`` on each session's insight, against that session's tries and the
    person's earlier insights."""

    _inner: ReflectionQuality = PrivateAttr(default_factory=ReflectionQuality)

    @weave.op
    def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        earlier: list[str] = []
        results: list[dict[str, Any]] = []
        misses: list[dict[str, Any]] = []
        for end in (t for t in output if t.get("kind") == "end" and t.get("reflection")):
            result = self._inner.score(output=end, tried=end.get("tried") or [], earlier=earlier)
            results.append(result)
            if not result["ok"]:
                failed = [k for k in ("specific", "grounded", "actionable", "new") if not result[k]]
                misses.append({"session": end.get("session"), "say": "(session end)", "reply": end["reflection"],
                               "why": "insight not " + ", ".join(failed)})
            earlier.append(str(end["reflection"]))
        ok = sum(r["ok"] for r in results)
        return {"ok": ok, "reflections": len(results), "share": _share(ok, len(results)), "misses": misses}


class ConversationRetrieval(weave.Scorer):
    """``MemoryRetrievalRelevance`` on every turn that showed few-shot examples."""

    _inner: MemoryRetrievalRelevance = PrivateAttr()

    def __init__(self, inner: MemoryRetrievalRelevance, **data: Any) -> None:
        super().__init__(**data)
        self._inner = inner

    @weave.op
    async def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        shares: list[float] = []
        from_memory = 0
        for turn in _turns(output):
            result = await self._inner.score(output=turn, message=turn.get("say") or "")
            if result["relevant_share"] is not None:
                shares.append(result["relevant_share"])
                from_memory += result["from_memory"]
        return {"turns_with_examples": len(shares), "relevant_share": sum(shares) / len(shares) if shares else None,
                "from_memory": from_memory}


class ConversationJudge(weave.Scorer):
    """``ReplyJudge`` (a chat model's rating) on every reply but the safety ones."""

    _inner: ReplyJudge = PrivateAttr()

    def __init__(self, inner: ReplyJudge, **data: Any) -> None:
        super().__init__(**data)
        self._inner = inner

    @weave.op
    async def score(self, *, output: Sequence[dict[str, Any]]) -> dict[str, Any]:
        judged: list[tuple[dict[str, Any], dict[str, Any]]] = []
        errors = 0
        for turn in _turns(output):
            result = await self._inner.score(output=turn, message=turn.get("say") or "",
                                             literal=bool(turn.get("literal")))
            errors += "error" in result
            if result["ok"] is not None:
                judged.append((turn, result))
        ok = sum(r["ok"] for _, r in judged)
        return {"ok": ok, "judged": len(judged), "errors": errors, "share": _share(ok, len(judged)),
                "mean_quality": sum(r["quality"] for _, r in judged) / len(judged) if judged else None,
                "misses": [_miss(t, f"judge: {r['problem'] or 'rated below ' + str(self._inner.pass_at)} "
                                    f"(warm {r['warm']}, clear {r['clear']}, fits {r['fits']})")
                           for t, r in judged if not r["ok"]]}
