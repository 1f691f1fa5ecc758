"""``sam2voice eval run``: a ``weave.Evaluation`` of the companion over a conversation dataset.

Each row is one scripted conversation; the "model" plays it through the real graph (real
Redis, the configured chat model) and every conversation scorer reads the result. Offline
Weave is disabled and the evaluation runs locally; with ``WANDB_API_KEY`` and
``SAM2VOICE_WEAVE_PROJECT`` set, ``Companion.build`` starts Weave and the same evaluation, its
rows and scores appear in the project.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field, PrivateAttr

from app.companion import Companion
from app.eval.conversations import Conversation, ConversationFile, play
from app.eval.learning import PersonaFile
from app.eval.personas import play_persona, success_by_session
from app.eval.scorers import (
    ConversationEffectiveness,
    ConversationJudge,
    ConversationReflections,
    ConversationRetrieval,
    ConversationSafety,
    ConversationStyle,
    ExpectedBehaviour,
)
from app.settings import Settings
from graphs.nodes.retrieve import situation_space
from graphs.scoring import MemoryRetrievalRelevance, ReplyJudge
from memories.errors import InvalidInput
from memories.interventions import InterventionMemory
from memories.tracing import weave

Progress = Callable[[str], None]


class EvalRow(BaseModel):
    """One conversation as played and scored."""

    id: str
    about: str = ""
    output: list[dict[str, Any]] | None = Field(description="Turn records and session ends; None if it failed.")
    scores: dict[str, Any] = Field(default_factory=dict, description="Each scorer's result, by scorer name.")


class EvalRun(BaseModel):
    """A whole evaluation: weave's summary, totals pooled over turns, and every row."""

    dataset: str
    model: str
    judge: str | None = Field(None, description="The judge model's class, when replies were also judged.")
    seconds: float
    summary: dict[str, Any] = Field(description="weave.Evaluation's summary (means and shares per conversation).")
    totals: dict[str, Any] = Field(description="Counts pooled over all turns (the table's figures).")
    rows: list[EvalRow]
    failed: list[str] = Field(default_factory=list, description="Conversations that raised while played.")


class _RecordedEvaluation(weave.Evaluation):
    """A weave.Evaluation that keeps each row's output and scores (weave returns only the
    summary), for the table's totals and the report's worst examples."""

    _rows: list[tuple[dict[str, Any], dict[str, Any]]] = PrivateAttr(default_factory=list)

    @property
    def played(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Each dataset row with what ``predict_and_score`` made of it (output and scores)."""
        return self._rows

    async def predict_and_score(self, model: Any, example: dict[str, Any]) -> dict[str, Any]:
        row = await super().predict_and_score(model, example)
        self._rows.append((example, row))
        return row


def _sum(rows: list[EvalRow], scorer: str, *keys: str) -> dict[str, int]:
    return {k: sum(int((r.scores.get(scorer) or {}).get(k) or 0) for r in rows) for k in keys}


def totals(rows: list[EvalRow]) -> dict[str, Any]:
    """Figures pooled over every turn of every conversation."""
    kinds = [f"{k}_{s}" for k in ("tool", "settles", "plan", "act") for s in ("met", "checked")]
    behaviour = _sum(rows, "ExpectedBehaviour", "met", "checked", *kinds)
    style = _sum(rows, "ConversationStyle", "ok", "turns")
    qualities = [(s["mean_quality"], s["turns"]) for r in rows if (s := r.scores.get("ConversationStyle"))
                 and s.get("mean_quality") is not None]
    safety = _sum(rows, "ConversationSafety", "correct", "turns", "crises", "missed_crisis", "false_alarm")
    effect = _sum(rows, "ConversationEffectiveness", "interventions", "helped", "failed", "unsettled")
    by_session: dict[str, list[int]] = {}
    for r in rows:
        for n, s in ((r.scores.get("ConversationEffectiveness") or {}).get("sessions") or {}).items():
            entry = by_session.setdefault(n, [0, 0])
            entry[0] += s["helped"]
            entry[1] += s["interventions"]
    reflections = _sum(rows, "ConversationReflections", "ok", "reflections")
    judged = _sum(rows, "ConversationJudge", "ok", "judged", "errors")
    retrieval = [(s["relevant_share"], s["turns_with_examples"]) for r in rows
                 if (s := r.scores.get("ConversationRetrieval")) and s.get("relevant_share") is not None]
    shown = sum(n for _, n in retrieval)
    return {
        "turns": sum(len([t for t in r.output or [] if t.get("kind") == "turn"]) for r in rows),
        "behaviour": behaviour, "style": {**style, "mean_quality": sum(q * n for q, n in qualities)
                                          / max(sum(n for _, n in qualities), 1) if qualities else None},
        "safety": safety, "effectiveness": effect,
        "effectiveness_by_session": {n: {"helped": h, "interventions": i} for n, (h, i) in sorted(by_session.items())},
        "simulated_success_by_session": success_by_session([r.output for r in rows]),
        "reflections": reflections, "judge": judged if any(r.scores.get("ConversationJudge") for r in rows) else None,
        "retrieval": {"turns_with_examples": shown,
                      "relevant_share": sum(s * n for s, n in retrieval) / shown if shown else None},
    }


def _eval_settings(settings: Settings, redis_url: str, data_dir: Path) -> Settings:
    """The user's settings on a scratch namespace and data dir; no population pool, so each
    conversation is scored on its own (the pool would let one change another's choices)."""
    memory = settings.memory.model_copy(update={"namespace": f"eval{uuid.uuid4().hex[:10]}"})
    policy = settings.companion.policy.model_copy(update={"use_population": False})
    companion = settings.companion.model_copy(update={"policy": policy})
    return settings.model_copy(update={"redis_url": redis_url, "data_dir": data_dir, "memory": memory,
                                       "companion": companion})


async def run_conversation_eval(spec: ConversationFile | None, *, dataset: str, redis_url: str, settings: Settings,
                                chat_model: BaseChatModel, judge: BaseChatModel | None = None,
                                personas: PersonaFile | None = None, progress: Progress | None = None) -> EvalRun:
    """Play and score every conversation of ``spec`` and every persona of ``personas`` (a
    scratch namespace on ``redis_url``); with a ``judge`` model, every reply is also rated by
    it (``ReplyJudge``)."""
    start = time.perf_counter()
    failed: list[str] = []
    rows_in: list[dict[str, Any]] = [{"row_id": c.id, "about": c.about, "kind": "conversation",
                                      "data": c.model_dump(mode="json")} for c in (spec.conversations if spec else [])]
    rows_in += [{"row_id": f"persona-{p.user_id}", "about": ", ".join(s.kind for s in p.situations),
                 "kind": "persona", "data": {"index": i}} for i, p in enumerate(personas.personas if personas else [])]
    if not rows_in:
        raise InvalidInput("nothing to evaluate: no conversations and no personas", field="conversations")
    with tempfile.TemporaryDirectory(prefix="sam2voice-eval-") as data_dir:
        async with Companion.build(_eval_settings(settings, redis_url, Path(data_dir)),
                                   chat_model=chat_model) as companion:
            deps = companion.deps
            interventions = deps.memory.registry.get(InterventionMemory)
            scorers: list[weave.Scorer] = [ExpectedBehaviour(), ConversationSafety(), ConversationStyle(),
                                           ConversationEffectiveness(), ConversationReflections()]
            if interventions is not None:
                space = await situation_space(deps, interventions)
                scorers.append(ConversationRetrieval(MemoryRetrievalRelevance(deps.memory.embeddings, space)))
            if judge is not None:
                scorers.append(ConversationJudge(ReplyJudge(judge)))
            done = 0

            async def played(row_id: str, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
                if kind == "persona":
                    assert personas is not None
                    return await play_persona(personas.personas[data["index"]], personas, companion, data["index"])
                return await play(Conversation.model_validate(data),
                                  lambda user, seed: companion.session(user, seed=seed), deps.memory.registry)

            @weave.op(name="sam2voice_companion")
            async def companion_model(row_id: str, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
                nonlocal done
                try:
                    records = await played(row_id, kind, data)
                except Exception as exc:  # one broken row is reported, the rest still run
                    failed.append(f"{row_id}: {type(exc).__name__}: {exc}")
                    raise
                done += 1
                if progress:
                    progress(f"{kind} {done}/{len(rows_in)} · {row_id}: "
                             f"{sum(t['kind'] == 'turn' for t in records)} turns")
                return records

            evaluation = _RecordedEvaluation(name=f"sam2voice-{Path(dataset).stem}", dataset=rows_in, scorers=scorers)
            summary = await evaluation.evaluate(companion_model)
            by_id = {example["row_id"]: row for example, row in evaluation.played}
    rows = [EvalRow(id=r["row_id"], about=r["about"], output=(by_id.get(r["row_id"]) or {}).get("output"),
                    scores=(by_id.get(r["row_id"]) or {}).get("scores") or {}) for r in rows_in]
    return EvalRun(dataset=dataset, model=type(chat_model).__name__, judge=type(judge).__name__ if judge else None,
                   seconds=round(time.perf_counter() - start, 1),
                   summary=_plain(summary), totals=totals(rows), rows=rows, failed=failed)


def _plain(value: Any) -> Any:
    """weave's summary as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)
