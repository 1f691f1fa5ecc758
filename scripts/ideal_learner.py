"""What an ideal learner could reach on a personas file: a ceiling for `sam2voice eval learning`.

The ideal learner knows exactly which of the person's situations each turn is, reads every
outcome right, always gives a tool, and runs Thompson sampling per situation over the nine
intervention tools (uniform Beta(1, 1) priors, samples sharpened like the policy's). It does
not know in advance which tool helps whom, so it must explore, as the companion must. The
same success probabilities, sessions and turns as the file; averaged over ``--seeds`` runs.

    .venv/bin/python scripts/ideal_learner.py tests/data/personas_heldout.json

Prints, per file: the last-5-sessions expected success / oracle, and the share of drifts
back to >= 0.8 x oracle (2-session moving average) within 4 sessions, without and with a
reset of the situation's beliefs when the tool that had been helping fails twice running.
Written by hand because it is a 60-line simulation of the evaluation's own rules.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.eval.learning import LAST_SESSIONS, PersonaFile, load_personas  # noqa: E402
from app.eval.learning_report import RECOVERY_WINDOW, RECOVERY_WITHIN  # noqa: E402
from tools.catalog import INTERVENTION_TOOLS  # noqa: E402


def simulate(spec: PersonaFile, seed: int, *, sharpness: float, reset: bool) -> tuple[float, list[int | None]]:
    """One run: (last-sessions expected / oracle, sessions to recover per drift)."""
    rng = random.Random(seed)
    got, best, recoveries = 0.0, 0.0, []
    for persona in spec.personas:
        beliefs = [{t: [1.0, 1.0] for t in INTERVENTION_TOOLS} for _ in persona.situations]
        last: list[list[tuple[str, bool]]] = [[] for _ in persona.situations]
        per_session: dict[tuple[int, int], list[float]] = {}
        for session in range(1, spec.sessions + 1):
            for _ in range(spec.turns_per_session):
                k = rng.randrange(len(persona.situations))
                situation = persona.situations[k]
                tool = max(INTERVENTION_TOOLS, key=lambda t, b=beliefs[k]: rng.betavariate(
                    b[t][0] * sharpness, b[t][1] * sharpness))
                p = situation.success_at(session).get(tool, 0.1)
                helped = rng.random() < p
                beliefs[k][tool][0 if helped else 1] += 1
                last[k].append((tool, helped))
                if reset and last[k][-2:] == [(tool, False)] * 2 and beliefs[k][tool][0] >= 3:
                    beliefs[k] = {t: [1 + (a - 1) * 0.1, 1 + (b - 1) * 0.1] for t, (a, b) in beliefs[k].items()}
                per_session.setdefault((k, session), []).append(p)
                if session > spec.sessions - LAST_SESSIONS:
                    got += p
                    best += situation.best_at(session)[1]
        for k, situation in enumerate(persona.situations):
            if situation.drift is None:
                continue
            start, target = situation.drift.from_session, 0.8 * situation.best_at(situation.drift.from_session)[1]
            seen: list[float] = []
            recovered = None
            for session in range(start, spec.sessions + 1):
                if (k, session) not in per_session:
                    continue
                seen.append(sum(per_session[(k, session)]) / len(per_session[(k, session)]))
                if sum(seen[-RECOVERY_WINDOW:]) / len(seen[-RECOVERY_WINDOW:]) >= target:
                    recovered = session - start + 1
                    break
            recoveries.append(recovered)
    return got / best, recoveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("personas", nargs="+", type=Path, help="personas JSON file(s)")
    parser.add_argument("--seeds", type=int, default=30, help="runs to average (default 30)")
    parser.add_argument("--sharpness", type=float, default=5.0, help="sample sharpening (default 5)")
    args = parser.parse_args()
    for path in args.personas:
        spec = load_personas(path)
        line = [f"{path.name}:"]
        for reset in (False, True):
            runs = [simulate(spec, seed, sharpness=args.sharpness, reset=reset) for seed in range(args.seeds)]
            ratio = sum(r for r, _ in runs) / len(runs)
            drifts = [d for _, ds in runs for d in ds]
            within = (f"{sum(1 for d in drifts if d is not None and d <= RECOVERY_WITHIN) / len(drifts):.2f}"
                      if drifts else "-")
            line.append(f"{'reset' if reset else 'plain'}: last-{LAST_SESSIONS} {ratio:.3f} x oracle, "
                        f"drifts within {RECOVERY_WITHIN}: {within}")
        print("  ".join(line))


if __name__ == "__main__":
    main()
