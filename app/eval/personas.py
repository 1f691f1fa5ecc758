"""Simulated personas (``tests/data/personas*.json``) as rows of ``sam2voice eval run``: each
person is played through every session with memory on, by the learning evaluation's
simulator (``app.eval.learning.run_person``), and recorded in the same shape as a scripted
conversation, so every conversation scorer reads it. Their turns carry what the simulator
decided (``simulated``: the tool received, its chance to help, whether it did)."""

from __future__ import annotations

from typing import Any

from app.companion import Companion
from app.eval.conversations import tried_in
from app.eval.learning import Persona, PersonaFile, run_person


async def play_persona(persona: Persona, spec: PersonaFile, companion: Companion, index: int
                       ) -> list[dict[str, Any]]:
    """One person through ``spec.sessions`` sessions; returns the turn records and session ends."""
    records: list[dict[str, Any]] = []
    await run_person(companion, persona, ("eval-run", index), seed=spec.seed, sessions=spec.sessions,
                     turns=spec.turns_per_session, memory_on=True, label="eval run", record=records.append)
    for end in (r for r in records if r["kind"] == "end"):
        end["tried"] = tried_in([r for r in records if r["kind"] == "turn" and r["session"] == end["session"]])
    return records


def success_by_session(rows: list[list[dict[str, Any]] | None]) -> dict[str, dict[str, int]]:
    """Per session number, how many simulated turns were helped (the persona rows only)."""
    found: dict[str, dict[str, int]] = {}
    for output in rows:
        for turn in output or []:
            if simulated := turn.get("simulated"):
                entry = found.setdefault(str(turn["session"]), {"helped": 0, "turns": 0})
                entry["helped"] += bool(simulated["helped"])
                entry["turns"] += 1
    return dict(sorted(found.items(), key=lambda kv: int(kv[0])))
