"""The agent's choice of intervention (graphs.policy): pure arithmetic, no Redis."""

from __future__ import annotations

from collections import Counter

import pytest

from graphs.configuration import PolicySettings
from graphs.policy import Choice, change_point, choose_tool, prior_means, similarity_weight, turn_rng
from memories.interventions import Neighbor
from memories.outcomes import Outcome
from memories.population import PoolCount
from memories.ranking import ToolStats

SETTINGS = PolicySettings()
# "steps" is what the general prior favours for this situation; "break" is a poor match.
RELEVANCE = {"steps": 0.55, "checkin": 0.40, "break": 0.30, "breathing": 0.20}
DRAWS = 200


def choices(neighbors: list[Neighbor], rates: dict[str, ToolStats] | None = None, **kwargs: object) -> list[Choice]:
    return [choose_tool(relevance=RELEVANCE, neighbors=neighbors, rates=rates or {}, settings=SETTINGS,
                        rng=turn_rng("maya", "thread", turn), **kwargs)  # type: ignore[arg-type]
            for turn in range(DRAWS)]


def tries(tool: str, outcome: Outcome, similarity: float, n: int) -> list[Neighbor]:
    return [Neighbor(tool, outcome, similarity, 3600.0) for _ in range(n)]


def stats_of(neighbors: list[Neighbor]) -> dict[str, ToolStats]:
    """The per-tool results a person with exactly these settled tries has."""
    value = {Outcome.TASK_COMPLETED: 1.0, Outcome.ABANDONED: 0.0}
    rates: dict[str, ToolStats] = {}
    for n in neighbors:
        old = rates.get(n.tool_name, ToolStats(tool_name=n.tool_name))
        rates[n.tool_name] = ToolStats(tool_name=n.tool_name, settled=old.settled + 1,
                                       value_sum=old.value_sum + value[n.outcome])
    return rates


def test_without_history_the_choice_follows_the_relevance_prior() -> None:
    picked = choices([])
    counts = Counter(c.tool for c in picked)
    assert counts.most_common(1)[0][0] == "steps"
    assert counts["steps"] >= 0.7 * DRAWS
    assert len(counts) > 1  # still explores: other tools get the odd try
    assert not any(c.from_memory for c in picked)
    first = next(c for c in picked if c.tool == "steps")
    assert first.reason == "steps: usually suits a moment like this"
    assert set(first.beliefs) == set(RELEVANCE)
    assert first.beliefs["steps"].mean > first.beliefs["break"].mean
    assert all(b.similar_weight == 0 for b in first.beliefs.values())


def test_similar_successes_of_another_tool_and_failures_of_the_favourite_move_the_choice() -> None:
    history = tries("break", Outcome.TASK_COMPLETED, 0.8, 4) + tries("steps", Outcome.ABANDONED, 0.8, 4)
    picked = choices(history, stats_of(history))
    counts = Counter(c.tool for c in picked)
    assert counts["break"] >= 0.9 * DRAWS
    chosen = next(c for c in picked if c.tool == "break")
    assert chosen.from_memory
    assert chosen.reason == "break: helped you 4 of 4 times when you felt like this"
    assert chosen.evidence == "you"
    beliefs = chosen.beliefs
    assert beliefs["break"].mean > 0.7 > beliefs["break"].prior
    assert beliefs["steps"].mean < beliefs["steps"].prior
    # Interleaved with the four failures of steps, each success ages by discount per newer try.
    assert 1.0 < beliefs["break"].similar_weight < 4.0 * SETTINGS.evidence_weight
    assert beliefs["steps"].similar_value == 0.0


def test_failures_in_dissimilar_situations_count_little() -> None:
    unrelated = tries("steps", Outcome.ABANDONED, 0.1, 4)  # below similar_from: another kind of moment
    picked = choices(unrelated, stats_of(unrelated))
    assert Counter(c.tool for c in picked)["steps"] >= 0.7 * DRAWS
    belief = picked[0].beliefs["steps"]
    assert belief.similar_weight == 0
    assert belief.mean == pytest.approx(belief.prior, abs=0.1)

    similar = tries("steps", Outcome.ABANDONED, 0.8, 4)
    after_similar = choices(similar, stats_of(similar))
    assert Counter(c.tool for c in after_similar)["steps"] < 0.3 * DRAWS  # the same failures, nearby, do count


def test_the_tools_record_elsewhere_counts_at_most_one_observation() -> None:
    # Twenty failures of "steps" in other situations (not among the neighbours) against a fresh prior.
    rates = {"steps": ToolStats(tool_name="steps", settled=20, value_sum=0.0)}
    belief = choose_tool(relevance=RELEVANCE, neighbors=[], rates=rates, settings=SETTINGS,
                         rng=turn_rng(1)).beliefs["steps"]
    assert belief.elsewhere == 20
    prior = belief.prior
    one_failure = SETTINGS.prior_strength * prior / (SETTINGS.prior_strength + 1)
    assert belief.mean == pytest.approx(one_failure, rel=1e-6)


def test_a_model_proposal_lifts_the_proposed_tools_prior() -> None:
    plain = prior_means(RELEVANCE, SETTINGS)
    proposed = prior_means(RELEVANCE, SETTINGS, proposal="break")
    assert proposed["break"] == pytest.approx(plain["break"] + SETTINGS.proposal_bonus)
    assert {t: v for t, v in proposed.items() if t != "break"} == {t: v for t, v in plain.items() if t != "break"}
    assert prior_means(RELEVANCE, SETTINGS, proposal="not-a-candidate") == plain
    assert plain["steps"] == pytest.approx(SETTINGS.prior_floor + SETTINGS.prior_span)
    assert min(plain.values()) >= SETTINGS.prior_floor


def test_similarity_weight_ramps_between_the_thresholds() -> None:
    assert similarity_weight(SETTINGS.similar_from - 0.1, SETTINGS) == 0
    assert similarity_weight(SETTINGS.similar_full + 0.1, SETTINGS) == 1
    middle = (SETTINGS.similar_from + SETTINGS.similar_full) / 2
    assert similarity_weight(middle, SETTINGS) == pytest.approx(0.5)


def test_the_turn_rng_replays_the_same_turn_and_differs_between_turns() -> None:
    same = [turn_rng("maya", "s1", 3, "I'm stuck").random() for _ in range(2)]
    assert same[0] == same[1]
    assert turn_rng("maya", "s1", 4, "I'm stuck").random() != same[0]
    assert turn_rng("leo", "s1", 3, "I'm stuck").random() != same[0]
    history = tries("break", Outcome.TASK_COMPLETED, 0.6, 1)
    replay = [choose_tool(relevance=RELEVANCE, neighbors=history, rates={}, settings=SETTINGS,
                          rng=turn_rng("maya", "s1", 3)) for _ in range(2)]
    assert replay[0] == replay[1]


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        choose_tool(relevance={}, neighbors=[], rates={}, settings=SETTINGS, rng=turn_rng(0))


def aged_tries(tool: str, outcome: Outcome, n: int, *, from_age_s: float) -> list[Neighbor]:
    """``n`` similar tries, one a day, the newest ``from_age_s`` ago."""
    return [Neighbor(tool, outcome, 0.9, from_age_s + day * 86400.0) for day in range(n)]


def share(picked: list[Choice], tool: str) -> float:
    return Counter(c.tool for c in picked)[tool] / len(picked)


def test_a_tool_that_stopped_working_loses_its_lead_within_three_tries() -> None:
    # "break" helped ten times, then (tastes changed) failed the last three times.
    history = aged_tries("break", Outcome.ABANDONED, 3, from_age_s=3600) + \
        aged_tries("break", Outcome.TASK_COMPLETED, 10, from_age_s=4 * 86400)
    before = aged_tries("break", Outcome.TASK_COMPLETED, 10, from_age_s=4 * 86400)
    assert share(choices(before, stats_of(before)), "break") >= 0.7
    after = choices(history, stats_of(history))
    assert share(after, "break") < 0.3
    assert after[0].beliefs["break"].tries == 10 and after[0].beliefs["break"].helped == 7
    # Without ageing by newer tries (and with a long half-life) ten old successes still win.
    never_ages = PolicySettings(discount=1.0, discount_failed=1.0, discount_any=1.0, change_discount=1.0)
    stubborn = [choose_tool(relevance=RELEVANCE, neighbors=history, rates=stats_of(history), settings=never_ages,
                            rng=turn_rng("maya", "thread", turn), half_life_days=365) for turn in range(DRAWS)]
    assert share(stubborn, "break") > 0.5


def test_a_tool_that_failed_long_ago_gets_tried_again() -> None:
    # "steps" failed five times six weeks ago; since then "checkin" was used twelve times, half helping.
    history = [Neighbor("checkin", Outcome.TASK_COMPLETED if i % 2 else Outcome.ABANDONED, 0.9, 3600.0 + i * 60)
               for i in range(12)] + aged_tries("steps", Outcome.ABANDONED, 5, from_age_s=42 * 86400)
    picked = choices(history, stats_of(history))
    assert share(picked, "steps") >= 0.1  # worth another try now and then: the old failures faded
    just_failed = [
        Neighbor("steps", Outcome.ABANDONED, 0.9, 60.0 + i) for i in range(5)] + [
        Neighbor("checkin", Outcome.TASK_COMPLETED if i % 2 else Outcome.ABANDONED, 0.9, 86400.0 + i * 60)
        for i in range(12)]
    assert share(choices(just_failed, stats_of(just_failed)), "steps") < 0.05


def test_when_what_helped_stops_helping_everything_learnt_before_fades_and_others_get_tried() -> None:
    """Gus's shed jobs: "steps" helped for weeks (and "checkin" failed its few tries then). Now
    "steps" has failed twice running: a change. What was learnt before it fades, steps' lead
    with it, and the other tools get tried much more often than the old record would allow."""
    before_change = [Neighbor("steps" if i % 3 else "checkin",
                              Outcome.TASK_COMPLETED if i % 3 else Outcome.ABANDONED, 0.9, 86400.0 + i * 3600)
                     for i in range(15)]
    history = aged_tries("steps", Outcome.ABANDONED, 2, from_age_s=600) + before_change
    assert change_point(history, SETTINGS) == 2  # the first try from before the change
    assert change_point(before_change, SETTINGS) is None  # nothing changed while steps kept helping
    one_failure = aged_tries("steps", Outcome.ABANDONED, 1, from_age_s=600) + before_change
    assert change_point(one_failure, SETTINGS) is None  # one bad day is no change
    after = choices(history, stats_of(history))
    without = [choose_tool(relevance=RELEVANCE, neighbors=history, rates=stats_of(history),
                           settings=PolicySettings(change_discount=1.0), rng=turn_rng("maya", "thread", turn))
               for turn in range(DRAWS)]
    assert share(after, "steps") < share(without, "steps") - 0.2
    assert after[0].beliefs["checkin"].mean > without[0].beliefs["checkin"].mean  # its old failures count less
    assert after[0].beliefs["steps"].mean < without[0].beliefs["steps"].mean - 0.1


def test_a_tool_that_never_helped_failing_again_is_no_change() -> None:
    history = aged_tries("break", Outcome.ABANDONED, 4, from_age_s=600) + \
        aged_tries("steps", Outcome.TASK_COMPLETED, 6, from_age_s=86400)
    assert change_point(history, SETTINGS) is None


GOOD_FOR_MOST = {"break": PoolCount(tries=40, successes=34, people=5)}


def test_the_pool_counts_only_once_five_people_contributed() -> None:
    four = {"break": PoolCount(tries=40, successes=34, people=4)}
    ignored = choices([], population=four)
    assert share(ignored, "break") < 0.1
    assert all(c.beliefs["break"].pool_weight == 0 and c.beliefs["break"].pool_rate is None for c in ignored)
    pooled = choices([], population=GOOD_FOR_MOST)
    assert share(pooled, "break") > 0.5 > share(pooled, "steps")  # other people's favourite over the general one
    chosen = next(c for c in pooled if c.tool == "break")
    assert chosen.why == "helps most people in moments like this" and chosen.evidence == "people"
    assert not chosen.from_memory
    off = PolicySettings(use_population=False)
    assert all(choose_tool(relevance=RELEVANCE, neighbors=[], rates={}, settings=off, rng=turn_rng(t),
                           population=GOOD_FOR_MOST).beliefs["break"].pool_weight == 0 for t in range(20))


def test_a_persons_own_evidence_outweighs_the_pool() -> None:
    mine = tries("break", Outcome.ABANDONED, 0.9, 4) + tries("steps", Outcome.TASK_COMPLETED, 0.9, 2)
    picked = choices(mine, stats_of(mine), population=GOOD_FOR_MOST)
    assert share(picked, "break") < 0.1
    assert picked[0].beliefs["break"].pool_weight < 0.5 * SETTINGS.population_strength
    fresh = choices([], population=GOOD_FOR_MOST)[0].beliefs["break"].pool_weight
    assert picked[0].beliefs["break"].pool_weight < fresh


def test_the_why_line_names_the_evidence() -> None:
    mine = tries("break", Outcome.TASK_COMPLETED, 0.9, 4) + tries("break", Outcome.ABANDONED, 0.9, 1)
    chosen = next(c for c in choices(mine, stats_of(mine)) if c.tool == "break")
    assert chosen.why == "helped you 4 of 5 times when you felt like this"
    fresh = choices([])
    assert {c.why for c in fresh if c.tool != "steps"} == {"trying something new"}
    assert {c.evidence for c in fresh if c.tool != "steps"} == {"new"}
