"""The learning evaluation: drift, recovery, the population, validation, and one small real
run against the embedded server (real graph, real memory, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.eval.learning import (
    UNLISTED_TOOL,
    PersonaFile,
    load_personas,
    no_pool,
    oracle_by_session,
    population_people,
    population_person,
    run_learning_eval,
    success_probability,
)
from app.eval.learning_report import DriftRecovery, recovery_summary, repeat_share, sessions_to_recover
from app.settings import Settings
from memories.embeddings import LocalMiniLMEmbeddings
from memories.errors import InvalidInput
from tests.companion_fixtures import SUCCESS_REPLY

FAILURE = "That didn't help, I gave up."
SITUATION: dict[str, Any] = {"kind": "starting", "utterances": ["I can't get myself to start my essay"],
                             "success": {"create_microsteps": 0.9, "suggest_break": 0.3},
                             "drift": {"from_session": 2, "success": {"suggest_break": 0.8}}}
PERSONA: dict[str, Any] = {"user_id": "pat", "about": "drifts at session 2", "situations": [SITUATION],
                           "success_replies": [SUCCESS_REPLY], "failure_replies": [FAILURE]}
POPULATION: dict[str, Any] = {
    "people": 4, "sessions": 2, "spread": 0.1, "late_joiners_after": 2,
    "success_replies": [SUCCESS_REPLY], "failure_replies": [FAILURE],
    "archetypes": [
        {"weight": 3, "about": "starters", "situations": [{
            "kind": "starting", "utterances": ["I can't get myself to start my essay", "I keep putting it off"],
            "success": {"create_microsteps": 0.85, "suggest_break": 0.2}}]},
        {"weight": 1, "about": "worriers", "situations": [{
            "kind": "anxiety", "utterances": ["I'm so anxious about the meeting"],
            "success": {"start_breathing_exercise": 0.95, "reframe_thought": 0.02}}]},
    ]}


def spec(**changes: Any) -> dict[str, Any]:
    return {"seed": 3, "sessions": 3, "turns_per_session": 2, "personas": [PERSONA], **changes}


# --- pure -----------------------------------------------------------------------------------------

def test_drift_replaces_success_from_its_session_and_the_oracle_follows() -> None:
    file = PersonaFile.model_validate(spec(sessions=4))
    situation = file.personas[0].situations[0]
    assert success_probability(situation, "create_microsteps", 1) == 0.9
    assert success_probability(situation, "create_microsteps", 2) == UNLISTED_TOOL  # no longer listed
    assert success_probability(situation, "suggest_break", 1) == 0.3
    assert success_probability(situation, "suggest_break", 4) == 0.8
    assert success_probability(situation, None, 3) == 0.05
    assert success_probability(situation, "create_microsteps") == 0.9  # the old call still works
    assert situation.best_at(1) == ("create_microsteps", 0.9) and situation.best_at(2) == ("suggest_break", 0.8)
    assert oracle_by_session(file) == pytest.approx([0.9, 0.8, 0.8, 0.8])


def test_recovery_counts_sessions_from_the_drift_with_a_two_session_average() -> None:
    assert sessions_to_recover([0.9], 0.64) == 1  # back in the drift session itself
    assert sessions_to_recover([0.1, 0.8, 0.8], 0.64) == 3  # (0.1 + 0.8) / 2 = 0.45 is not enough yet
    assert sessions_to_recover([0.1, 0.9, 0.1], 0.5) == 2  # (0.1 + 0.9) / 2 = 0.5 reaches it
    assert sessions_to_recover([0.1, None, 0.9, 0.9], 0.64) == 4  # session 2 skipped: window (0.1, 0.9) at 3
    assert sessions_to_recover([0.1, 0.2, None], 0.64) is None
    assert sessions_to_recover([], 0.5) is None

    def drift(sessions: int | None) -> DriftRecovery:
        return DriftRecovery(persona="p", situation="s", from_session=2, target=0.6, expected_after=[],
                             sessions=sessions)

    summary = recovery_summary([drift(1), drift(3), drift(6), drift(None)])
    assert (summary.max, summary.median, summary.never_recovered, summary.share_within_4) == (6, 4.5, 1, 0.5)
    assert recovery_summary([drift(None), drift(None), drift(2)]).median is None
    assert recovery_summary([]).max is None and recovery_summary([]).share_within_4 is None
    assert repeat_share(["a", "a", "b", "b", "b"]) == 0.75 and repeat_share(["a"]) is None


def test_population_people_vary_within_the_spread_and_repeat_from_the_seed() -> None:
    file = PersonaFile.model_validate(spec(population={**POPULATION, "people": 60}))
    population = file.population
    assert population is not None
    people = population_people(population, file.seed)
    assert [p.user_id for p in people[:2]] == ["pop-000", "pop-001"]
    archetypes = {a.situations[0].kind: a for a in population.archetypes}
    for person in people:
        situation = person.situations[0]
        base = archetypes[situation.kind].situations[0].success
        assert set(situation.success) == set(base)
        for tool, p in situation.success.items():
            assert max(0.0, base[tool] - 0.1) - 1e-9 <= p <= min(1.0, base[tool] + 0.1) + 1e-9
        assert person.profile["consent_pooled_learning"] is True
    kinds = [p.situations[0].kind for p in people]
    assert 30 <= kinds.count("starting") <= 55  # weights 3 : 1
    worriers = [p.situations[0].success["start_breathing_exercise"] for p in people
                if p.situations[0].kind == "anxiety"]
    assert max(worriers) == 1.0 and min(worriers) >= 0.85  # 0.95 ± 0.1, clipped at 1
    assert population_person(population, file.seed, 7) == people[7]  # keyed by index: a rerun draws the same
    assert population_people(population, file.seed + 1) != people


def test_no_pool_switches_only_the_pool_off() -> None:
    settings = Settings()
    changed = no_pool(settings)
    assert changed.companion.policy.use_population is False and settings.companion.policy.use_population is True
    assert changed.companion.policy.model_dump(exclude={"use_population"}) == settings.companion.policy.model_dump(
        exclude={"use_population"})


ARCHETYPE = POPULATION["archetypes"][0]


@pytest.mark.parametrize(("changes", "message"), [
    ({"personas": [{**PERSONA, "situations": [{**SITUATION, "drift": {"from_session": 2,
                                                                    "success": {"teleport": 0.5}}}]}]},
     "personas.0.situations.0.drift.success"),
    ({"personas": [{**PERSONA, "situations": [{**SITUATION, "drift": {"from_session": 2,
                                                                    "success": {"suggest_break": 1.5}}}]}]},
     "personas.0.situations.0.drift.success"),
    ({"personas": [{**PERSONA, "situations": [{**SITUATION, "drift": {"from_session": 0, "success": {}}}]}]},
     "personas.0.situations.0.drift.from_session"),
    ({"sessions": 1}, "drift.from_session of 'starting' is 2, after the last session (1)"),
    ({"population": {**POPULATION, "sessions": 1, "archetypes": [{**ARCHETYPE, "situations": [SITUATION]}]}},
     "after the last session (1)"),
    ({"population": {**POPULATION, "archetypes": [{**ARCHETYPE, "weight": 0}]}}, "population.archetypes.0.weight"),
    ({"population": {**POPULATION, "archetypes": []}}, "population.archetypes"),
    ({"population": {**POPULATION, "late_joiners_after": 4}}, "late_joiners_after (4) must be below people (4)"),
    ({"population": {**POPULATION, "spread": 0.6}}, "population.spread"),
    ({"population": {**POPULATION, "spread": -0.1}}, "population.spread"),
    ({"personas": []}, "a file needs personas or a population"),
], ids=["drift-tool", "drift-probability", "drift-from-zero", "drift-after-end", "archetype-drift-after-end",
        "weight", "no-archetypes", "late-joiners", "spread-high", "spread-negative", "nothing"])
def test_bad_files_say_which_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec(**changes)))
    with pytest.raises(InvalidInput) as caught:
        load_personas(path)
    assert message in str(caught.value) and caught.value.field == "personas"


def test_a_population_alone_is_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "pop.json"
    path.write_text(json.dumps(spec(personas=[], population=POPULATION)))
    assert load_personas(path).population is not None


# --- one small real run ----------------------------------------------------------------------------

async def test_a_small_run_with_drift_and_a_population_reports_every_figure(
        redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path) -> None:
    file = PersonaFile.model_validate(spec(population=POPULATION))
    lines: list[str] = []
    result = await run_learning_eval(file, redis_url=redis_url, settings=Settings(), progress=lines.append,
                                     base_embeddings=(minilm, minilm.model_id, minilm.dims))
    json.dumps(result)  # plain JSON
    on, off = result["memory_on"], result["memory_off"]
    for arm in (on, off):
        assert len(arm["success_by_session"]) == 3 and len(arm["expected_by_session"]) == 3
        assert list(arm["by_persona"]) == ["pat"] and list(arm["expected_by_persona"]) == ["pat"]
        assert all(0 <= v <= 1 for v in [*arm["success_by_session"], *arm["expected_by_session"]])
    assert on["outcome_reading_accuracy"] + on["outcome_unread"] + on["outcome_misread"] == pytest.approx(1, abs=1e-3) \
        or on["outcome_reading_accuracy"] == on["outcome_unread"] == on["outcome_misread"] == 0.0
    assert "outcome_reading_accuracy" not in off
    assert result["oracle_by_session"] == [0.9, 0.8, 0.8] and result["oracle_rate"] == pytest.approx(0.8333, abs=1e-4)
    assert result["oracle_last"] == pytest.approx(0.8333, abs=1e-4) and result["last_sessions"] == 3
    for key in ("memory_on_last", "memory_off_last", "memory_on_last_expected", "memory_off_last_expected",
                "on_vs_oracle", "on_vs_oracle_expected", "on_minus_off", "on_minus_off_expected"):
        assert isinstance(result[key], float), key
    assert isinstance(result["target_met"], bool)
    first = result["first_sessions"]
    assert first["sessions"] == 3 and first["oracle"] == pytest.approx(0.8333, abs=1e-4)
    assert {"memory_on", "memory_off", "memory_on_expected", "memory_off_expected", "on_vs_oracle"} <= set(first)
    recovery = result["recovery_sessions"]
    [drift] = recovery["drifts"]
    assert (drift["persona"], drift["situation"], drift["from_session"]) == ("pat", "starting", 2)
    assert drift["target"] == pytest.approx(0.64) and len(drift["expected_after"]) == 2
    assert drift["sessions"] in (None, 1, 2) and recovery["moving_average"] == 2
    assert isinstance(result["recovery_target_met"], bool)
    confusion = result["confusion"]["memory_on"]["pat"]["starting"]
    assert confusion["best_tool"] == "suggest_break"
    assert sum(confusion["all_sessions"].values()) == 6 and sum(confusion["last_sessions"].values()) == 6
    assert confusion["repeat_share"] is None or 0 <= confusion["repeat_share"] <= 1
    population = result["population"]
    assert (population["people"], population["late_joiners"], population["sessions"]) == (4, 2, 2)
    for key in ("first3_with_pool", "first3_without_pool", "first3_with_pool_expected",
                "first3_without_pool_expected", "oracle_first3", "with_vs_oracle", "without_vs_oracle"):
        assert 0 <= population[key] <= 2, key
    assert isinstance(population["target_met"], bool)
    assert sum("session 3/3" in line for line in lines) == 2  # both arms
    assert sum(line.startswith("population · pop-") for line in lines) == 4 * 2
    assert sum(line.startswith("no pool · pop-002-nopool") for line in lines) == 2

    pytest.importorskip("matplotlib")
    from app.eval.learning import plot_learning

    plot_learning(result, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000

    skipped = await run_learning_eval(file, redis_url=redis_url, settings=Settings(), population=False,
                                      base_embeddings=(minilm, minilm.model_id, minilm.dims))
    assert skipped["population"] is None
    drop = {"seconds", "workers", "population"}
    assert {k: v for k, v in skipped.items() if k not in drop} == {k: v for k, v in result.items() if k not in drop}


async def test_worker_processes_give_the_same_result(redis_url: str, minilm: LocalMiniLMEmbeddings) -> None:
    file = PersonaFile.model_validate(spec(personas=[PERSONA, {**PERSONA, "user_id": "sam"}], sessions=2))
    lines: list[str] = []
    here = await run_learning_eval(file, redis_url=redis_url, settings=Settings(),
                                   base_embeddings=(minilm, minilm.model_id, minilm.dims))
    there = await run_learning_eval(file, redis_url=redis_url, settings=Settings(), workers=2,
                                    progress=lines.append)
    assert there["workers"] == 2
    drop = {"seconds", "workers"}
    assert {k: v for k, v in there.items() if k not in drop} == {k: v for k, v in here.items() if k not in drop}
    for arm in ("memory on ", "memory off"):
        for who in ("pat", "sam"):
            assert sum(line.startswith(f"{arm} · {who} · session ") for line in lines) == 2, (arm, who)
    assert len(lines) == 2 * 2 * 2  # every session of every persona in both arms came back from the workers
