"""The learning evaluation's figures, from the recorded turns (see :mod:`app.eval.learning`).

Two success figures per arm and session: **realized** (share of turns the person was
helped, with the outcome's noise) and **expected** (mean over turns of the probability that
the chosen tool helps: the same choices without the coin flips). The oracle picks the best
tool in every situation, per session (drift changes it).

**Recovery** after a drift: per session from the drift on, memory-on's expected success in
the drifted situation; the number of sessions (the drift session counts as 1) until its
2-session moving average (the window never reaches back before the drift, so at the drift
session it is that session alone; sessions without a turn in the situation are skipped) is
back at >= 0.8 x the situation's post-drift best probability. None: never within the run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from app.eval.learning import (
    FIRST_SESSIONS,
    LAST_SESSIONS,
    PersonaFile,
    PersonRun,
    Turn,
    oracle_by_session,
    persona_oracle,
    population_people,
)
from memories.errors import InvalidInput
from memories.outcomes import FAILED, SUCCEEDED

RECOVERY_SHARE = 0.8  # back at this share of the post-drift best probability
RECOVERY_WINDOW = 2  # sessions in the moving average
RECOVERY_WITHIN = 4  # the target: every drift recovered within this many sessions
TARGET_VS_ORACLE = 0.85
TARGET_ON_MINUS_OFF = 0.2
POPULATION_TARGET = 0.7


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


class ArmResult(BaseModel):
    """One arm's results."""

    success_by_session: list[float] = Field(description="Realized success per session, over all personas.")
    expected_by_session: list[float] = Field(description="Expected success per session (probability of the choice).")
    by_persona: dict[str, list[float]] = Field(description="Realized success per session, per persona.")
    expected_by_persona: dict[str, list[float]] = Field(description="Expected success per session, per persona.")


class OnArmResult(ArmResult):
    """Memory on also measures how the answers were read."""

    outcome_reading_accuracy: float = Field(description="Share of answers to a tool read with the right sign.")
    outcome_unread: float = Field(description="Share read as no outcome at all.")
    outcome_misread: float = Field(description="Share read with the wrong sign.")
    outcome_asked: float = Field(0.0, description="Share of answers after which it asked \"did that help?\".")
    outcome_read_after_asking: float = Field(0.0, description="Of those, the share whose answer was read.")


class FirstSessions(BaseModel):
    """The first sessions: how fast a new person is helped."""

    sessions: int
    memory_on: float
    memory_off: float
    memory_on_expected: float
    memory_off_expected: float
    oracle: float
    on_vs_oracle: float | None
    off_vs_oracle: float | None
    on_vs_oracle_expected: float | None


class DriftRecovery(BaseModel):
    persona: str
    situation: str
    from_session: int
    target: float = Field(description="0.8 x the best post-drift probability.")
    expected_after: list[float | None] = Field(description="Memory-on expected success there, per session from the "
                                                           "drift on (None: no turn in it).")
    sessions: int | None = Field(description="Sessions until recovered (the drift session is 1); None: never.")


class Recovery(BaseModel):
    drifts: list[DriftRecovery]
    moving_average: int = RECOVERY_WINDOW
    max: int | None = Field(description="Slowest recovery among those that recovered.")
    median: float | None = Field(description="Median, never-recovered counted as infinitely slow (None if that).")
    never_recovered: int
    share_within_4: float | None


class SituationConfusion(BaseModel):
    best_tool: str | None = Field(description="Best tool now (after the drift, if any).")
    last_sessions: dict[str, int] = Field(description="Chosen tool ('none': no tool) → turns, last 5 sessions.")
    all_sessions: dict[str, int]
    repeat_share: float | None = Field(description="Share of turns repeating the tool chosen the previous time in "
                                                   "this situation.")


class PopulationResult(BaseModel):
    people: int
    late_joiners: int
    sessions: int = Field(description="First sessions compared (up to 3).")
    first3_with_pool: float
    first3_without_pool: float
    first3_with_pool_expected: float
    first3_without_pool_expected: float
    oracle_first3: float
    with_vs_oracle: float | None
    without_vs_oracle: float | None
    with_vs_oracle_expected: float | None
    without_vs_oracle_expected: float | None
    target_met: bool


class LearningReport(BaseModel):
    memory_on: OnArmResult
    memory_off: ArmResult
    oracle_rate: float = Field(description="Mean of oracle_by_session.")
    oracle_by_session: list[float]
    last_sessions: int
    oracle_last: float | None
    memory_on_last: float | None
    memory_off_last: float | None
    memory_on_last_expected: float | None
    memory_off_last_expected: float | None
    on_vs_oracle: float | None = Field(description="Last sessions, realized memory-on / oracle.")
    on_vs_oracle_expected: float | None
    on_minus_off: float | None
    on_minus_off_expected: float | None
    target_met: bool | None = Field(description="on_vs_oracle >= 0.85 and on_minus_off >= 0.2 (None: no personas).")
    first_sessions: FirstSessions | None
    recovery_sessions: Recovery
    recovery_target_met: bool | None = Field(description="Every drift recovered within 4 sessions (None: no drift).")
    confusion: dict[str, dict[str, dict[str, SituationConfusion]]] = Field(
        description="Arm → persona → situation → what was chosen.")
    population: PopulationResult | None


# --- pure pieces ---------------------------------------------------------------------------------

def per_session(turns: list[Turn], sessions: int, value: str) -> list[float | None]:
    """Mean of ``value`` ("helped" or "p") per session (1-based sessions, None where no turn)."""
    out: list[float | None] = []
    for s in range(1, sessions + 1):
        here = [float(getattr(t, value)) for t in turns if t.session == s]
        out.append(_mean(here))
    return out


def sessions_to_recover(after: list[float | None], target: float, window: int = RECOVERY_WINDOW) -> int | None:
    """Sessions from the drift (``after[0]`` is the drift session, counted as 1) until the
    moving average over the last ``window`` sessions with a value is >= ``target``."""
    seen: list[float] = []
    for k, value in enumerate(after):
        if value is None:
            continue
        seen = [*seen, value][-window:]
        if sum(seen) / len(seen) >= target - 1e-12:
            return k + 1
    return None


def recovery_summary(drifts: list[DriftRecovery]) -> Recovery:
    done = [d.sessions for d in drifts if d.sessions is not None]
    never = len(drifts) - len(done)
    median = None
    if drifts:
        middle = statistics.median([d.sessions if d.sessions is not None else float("inf") for d in drifts])
        median = None if middle == float("inf") else float(middle)
    return Recovery(drifts=drifts, max=max(done) if done else None, median=median, never_recovered=never,
                    share_within_4=_r(sum(s <= RECOVERY_WITHIN for s in done) / len(drifts)) if drifts else None)


def repeat_share(tools: list[str | None]) -> float | None:
    """Share of choices equal to the one before (None with fewer than two)."""
    if len(tools) < 2:
        return None
    return round(sum(a == b for a, b in zip(tools, tools[1:], strict=False)) / (len(tools) - 1), 4)


def _arm(spec: PersonaFile, runs: dict[str, PersonRun], prefix: str) -> dict[str, Any]:
    realized, expected = {}, {}
    for i, persona in enumerate(spec.personas):
        turns = runs[f"{prefix}:{i}"].turns
        realized[persona.user_id] = [round(v or 0.0, 4) for v in per_session(turns, spec.sessions, "helped")]
        expected[persona.user_id] = [round(v or 0.0, 4) for v in per_session(turns, spec.sessions, "p")]

    def over(by: dict[str, list[float]]) -> list[float]:
        return [round(sum(r[s] for r in by.values()) / len(by), 4) for s in range(spec.sessions)] if by else []

    return {"success_by_session": over(realized), "expected_by_session": over(expected), "by_persona": realized,
            "expected_by_persona": expected}


def _reading(spec: PersonaFile, runs: dict[str, PersonRun]) -> dict[str, float]:
    right = unread = wrong = asked = settled_after = 0
    for i in range(len(spec.personas)):
        for t in runs[f"on:{i}"].turns:
            if t.tool is None:
                continue
            asked += t.asked
            settled_after += t.asked and (t.answer_read in SUCCEEDED or t.answer_read in FAILED)
            sign = True if t.read in SUCCEEDED else False if t.read in FAILED else None
            if sign is None:
                unread += 1
            elif sign == t.helped:
                right += 1
            else:
                wrong += 1
    total = right + unread + wrong
    return {"outcome_reading_accuracy": round(right / total, 4) if total else 0.0,
            "outcome_unread": round(unread / total, 4) if total else 0.0,
            "outcome_misread": round(wrong / total, 4) if total else 0.0,
            "outcome_asked": round(asked / total, 4) if total else 0.0,
            "outcome_read_after_asking": round(settled_after / asked, 4) if asked else 0.0}


def _confusion(spec: PersonaFile, runs: dict[str, PersonRun], prefix: str) -> dict[str, dict[str, SituationConfusion]]:
    out: dict[str, dict[str, SituationConfusion]] = {}
    first_last = spec.sessions - min(LAST_SESSIONS, spec.sessions) + 1
    for i, persona in enumerate(spec.personas):
        turns = runs[f"{prefix}:{i}"].turns
        kinds = [s.kind for s in persona.situations]
        per: dict[str, SituationConfusion] = {}
        for j, situation in enumerate(persona.situations):
            key = situation.kind if kinds.count(situation.kind) == 1 else f"{situation.kind}#{j}"
            chosen = [t for t in turns if t.situation == j]
            tools = [t.tool for t in chosen]
            per[key] = SituationConfusion(
                best_tool=situation.best_at(spec.sessions)[0],
                last_sessions=dict(Counter(t.tool or "none" for t in chosen if t.session >= first_last)),
                all_sessions=dict(Counter(t or "none" for t in tools)), repeat_share=repeat_share(tools))
        out[persona.user_id] = per
    return out


def _recovery(spec: PersonaFile, runs: dict[str, PersonRun]) -> Recovery:
    drifts = []
    for i, persona in enumerate(spec.personas):
        turns = runs[f"on:{i}"].turns
        for j, situation in enumerate(persona.situations):
            if situation.drift is None:
                continue
            start = situation.drift.from_session
            after = per_session([t for t in turns if t.situation == j], spec.sessions, "p")[start - 1:]
            target = RECOVERY_SHARE * situation.best_at(start)[1]
            drifts.append(DriftRecovery(persona=persona.user_id, situation=situation.kind, from_session=start,
                                        target=round(target, 4), expected_after=[_r(v) for v in after],
                                        sessions=sessions_to_recover(after, target)))
    return recovery_summary(drifts)


def _population(spec: PersonaFile, runs: dict[str, PersonRun]) -> PopulationResult | None:
    population = spec.population
    if population is None or "pool:0" not in runs:
        return None
    people = population_people(population, spec.seed)
    k = min(FIRST_SESSIONS, population.sessions)
    late = range(population.late_joiners_after, population.people)

    def first(prefix: str, value: str) -> float:
        per = [_mean([float(getattr(t, value)) for t in runs[f"{prefix}:{i}"].turns if t.session <= k]) or 0.0
               for i in late]
        return sum(per) / len(per)

    oracle = sum(sum(persona_oracle(people[i].situations, s) for s in range(1, k + 1)) / k for i in late) / len(late)
    with_pool, without = first("pool", "helped"), first("nopool", "helped")
    with_e, without_e = first("pool", "p"), first("nopool", "p")
    return PopulationResult(
        people=population.people, late_joiners=len(late), sessions=k, first3_with_pool=round(with_pool, 4),
        first3_without_pool=round(without, 4), first3_with_pool_expected=round(with_e, 4),
        first3_without_pool_expected=round(without_e, 4), oracle_first3=round(oracle, 4),
        with_vs_oracle=_ratio(with_pool, oracle), without_vs_oracle=_ratio(without, oracle),
        with_vs_oracle_expected=_ratio(with_e, oracle), without_vs_oracle_expected=_ratio(without_e, oracle),
        target_met=bool(oracle) and with_pool / oracle >= POPULATION_TARGET)


def build_report(spec: PersonaFile, runs: dict[str, PersonRun]) -> LearningReport:
    """Every figure from the recorded turns (``runs`` keyed "on:<i>", "off:<i>", "pool:<i>", "nopool:<i>")."""
    has_personas = bool(spec.personas)
    on = OnArmResult(**_arm(spec, runs, "on"), **_reading(spec, runs)) if has_personas else OnArmResult(
        success_by_session=[], expected_by_session=[], by_persona={}, expected_by_persona={},
        outcome_reading_accuracy=0.0, outcome_unread=0.0, outcome_misread=0.0)
    off = ArmResult(**_arm(spec, runs, "off")) if has_personas else ArmResult(
        success_by_session=[], expected_by_session=[], by_persona={}, expected_by_persona={})
    oracle = oracle_by_session(spec)
    last = min(LAST_SESSIONS, spec.sessions)

    def tail(values: list[float], n: int = last) -> float | None:
        return _mean(values[-n:]) if values else None

    on_last, off_last, oracle_last = tail(on.success_by_session), tail(off.success_by_session), tail(oracle)
    on_last_e, off_last_e = tail(on.expected_by_session), tail(off.expected_by_session)
    first_sessions = None
    if has_personas:
        k = min(FIRST_SESSIONS, spec.sessions)

        def head(values: list[float]) -> float:
            return round(sum(values[:k]) / k, 4)

        first_oracle = head(oracle)
        first_sessions = FirstSessions(
            sessions=k, memory_on=head(on.success_by_session), memory_off=head(off.success_by_session),
            memory_on_expected=head(on.expected_by_session), memory_off_expected=head(off.expected_by_session),
            oracle=first_oracle, on_vs_oracle=_ratio(head(on.success_by_session), first_oracle),
            off_vs_oracle=_ratio(head(off.success_by_session), first_oracle),
            on_vs_oracle_expected=_ratio(head(on.expected_by_session), first_oracle))
    recovery = _recovery(spec, runs)
    target_met = None
    if on_last is not None and off_last is not None and oracle_last is not None:
        target_met = on_last >= TARGET_VS_ORACLE * oracle_last and on_last - off_last >= TARGET_ON_MINUS_OFF
    return LearningReport(
        memory_on=on, memory_off=off, oracle_rate=round(_mean(oracle) or 0.0, 4),
        oracle_by_session=[round(v, 4) for v in oracle], last_sessions=last, oracle_last=_r(oracle_last),
        memory_on_last=_r(on_last), memory_off_last=_r(off_last), memory_on_last_expected=_r(on_last_e),
        memory_off_last_expected=_r(off_last_e), on_vs_oracle=_ratio(on_last, oracle_last),
        on_vs_oracle_expected=_ratio(on_last_e, oracle_last),
        on_minus_off=_r(on_last - off_last) if on_last is not None and off_last is not None else None,
        on_minus_off_expected=_r(on_last_e - off_last_e) if on_last_e is not None and off_last_e is not None
        else None,
        target_met=target_met, first_sessions=first_sessions, recovery_sessions=recovery,
        recovery_target_met=None if not recovery.drifts else all(
            d.sessions is not None and d.sessions <= RECOVERY_WITHIN for d in recovery.drifts),
        confusion={"memory_on": _confusion(spec, runs, "on"), "memory_off": _confusion(spec, runs, "off")}
        if has_personas else {},
        population=_population(spec, runs))


# --- the plot ------------------------------------------------------------------------------------

def plot_learning(result: dict[str, Any], path: Path) -> None:
    """Success per session, memory on vs off (realized, solid; expected, thin dashed), the oracle
    per session (steps), each drift (dashed vertical line) and the last sessions shaded; with a
    population, a second panel: first sessions with vs without the pool vs the oracle."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # matplotlib is a dev extra
        raise InvalidInput("plotting needs matplotlib (pip install -e '.[dev]')", field="plot") from exc
    population = result.get("population")
    on, off = result["memory_on"]["success_by_session"], result["memory_off"]["success_by_session"]
    panels = (1 if on else 0) + (1 if population else 0)
    if not panels:
        raise InvalidInput("nothing to plot: no personas and no population ran", field="plot")
    widths = [3, 1][:panels] if on else [1]
    fig, axes = plt.subplots(1, panels, figsize=(7 + 2.5 * (panels - 1), 3.8), dpi=120,
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    axes_left = list(axes[0])
    if on:
        ax = axes_left.pop(0)
        sessions = list(range(1, len(on) + 1))
        oracle = result.get("oracle_by_session") or [result["oracle_rate"]] * len(on)
        ax.plot(sessions, on, marker="o", color="C0", label="memory on")
        ax.plot(sessions, off, marker="s", color="C1", label="memory off")
        if "expected_by_session" in result["memory_on"]:
            ax.plot(sessions, result["memory_on"]["expected_by_session"], color="C0", linestyle="--", linewidth=0.8,
                    alpha=0.7, label="expected (on / off)")
            ax.plot(sessions, result["memory_off"]["expected_by_session"], color="C1", linestyle="--",
                    linewidth=0.8, alpha=0.7)
        edges = [s - 0.5 for s in [*sessions, len(sessions) + 1]]
        ax.stairs(oracle, edges, color="grey", baseline=None, label="oracle (best tool every time)")
        ax.stairs([TARGET_VS_ORACLE * v for v in oracle], edges, color="grey", linestyle=":", baseline=None,
                  label=f"{TARGET_VS_ORACLE} × oracle")
        drifts = (result.get("recovery_sessions") or {}).get("drifts", [])
        for d in drifts:
            ax.axvline(d["from_session"] - 0.5, color="C3", linestyle="--", linewidth=0.8, alpha=0.6)
        if 0 < len(drifts) <= 4:
            for n, d in enumerate(drifts):
                ax.text(d["from_session"] - 0.4, 0.98 - 0.06 * n, f"{d['persona']}/{d['situation']}", fontsize=6,
                        color="C3", va="top")
        elif drifts:
            ax.plot([], [], color="C3", linestyle="--", linewidth=0.8, label=f"{len(drifts)} drifts")
        ax.axvspan(len(on) - result["last_sessions"] + 0.5, len(on) + 0.5, color="grey", alpha=0.1)
        ax.set_xlabel("session")
        ax.set_ylabel("share of turns that helped")
        ax.set_ylim(0, 1)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower center", fontsize=7, ncol=2)
        ax.set_title("Learning what helps each person (simulated personas)", fontsize=9)
    if population:
        ax = axes_left.pop(0)
        labels = ["with pool", "without pool", "oracle"]
        values = [population["first3_with_pool"], population["first3_without_pool"], population["oracle_first3"]]
        ax.bar(labels, values, color=["C0", "C1", "grey"])
        ax.axhline(POPULATION_TARGET * population["oracle_first3"], color="grey", linestyle=":", linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"Late joiners, first {population['sessions']} sessions", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
