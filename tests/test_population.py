"""The population pool (memories.population): counts only, consented, and forgotten exactly,
against the real embedded Redis."""

from __future__ import annotations

import pytest

from app.person_data import PersonData
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.population import SITUATION_KINDS, Population
from memories.stack import MemoryStack
from tests.conftest import element
from tools.store import CoachingStore

STUCK = "i cant get started on my essay, been putting it off all day"
PEOPLE = [f"person{i}" for i in range(6)]


@pytest.fixture
def interventions(stack: MemoryStack) -> InterventionMemory:
    return element(stack, InterventionMemory)


async def tried(interventions: InterventionMemory, user: str, tool: str, outcome: Outcome, *,
                contribute: bool = True, said: str = STUCK) -> str:
    record_id = await interventions.save(user, {"text": "Let's find a tiny first step.", "tool_name": tool,
                                                "user_context": said})
    await interventions.settle(user, record_id, outcome, contribute=contribute)
    return record_id


async def pool_now(population: Population, cluster: str = "starting") -> dict[str, tuple[int, int, int]]:
    return {t: (c.tries, c.successes, c.people) for t, c in (await population.counts(cluster)).items()}


async def test_a_situation_joins_the_nearest_kind_of_moment(interventions: InterventionMemory) -> None:
    clusters = interventions.population.clusters
    embed = interventions.backend.embeddings.aembed_query
    assert await clusters.nearest(await embed(STUCK)) == "starting"
    assert await clusters.nearest(await embed("the music next door is so loud i cant think")) == "sensory"
    assert await clusters.nearest(await embed("dishes everywhere, kitchen is a tip")) == "chores"
    assert set(await clusters.centroids()) == set(SITUATION_KINDS)


async def test_settled_outcomes_of_consenting_people_are_pooled_as_counts(interventions: InterventionMemory,
                                                                          stack: MemoryStack) -> None:
    population = interventions.population
    for user in PEOPLE[:3]:
        await tried(interventions, user, "create_microsteps", Outcome.TASK_PROGRESS)
        await tried(interventions, user, "create_microsteps", Outcome.ABANDONED)
    await tried(interventions, PEOPLE[3], "suggest_break", Outcome.RE_ENGAGED)
    await tried(interventions, PEOPLE[4], "suggest_break", Outcome.RE_ENGAGED, contribute=False)  # said no
    assert await pool_now(population) == {"create_microsteps": (6, 3, 3), "suggest_break": (1, 1, 1)}
    # No text and no user id anywhere in the pooled keys.
    client = stack.client
    keys = [k async for k in client.scan_iter(match=f"{population.backend.settings.namespace}:population:*")]
    assert keys
    for key in keys:
        dump = repr(await client.hgetall(key)) + key.decode()
        assert not any(user in dump for user in PEOPLE) and "essay" not in dump


async def test_settling_again_or_correcting_never_counts_twice(interventions: InterventionMemory) -> None:
    population = interventions.population
    record = await tried(interventions, PEOPLE[0], "create_microsteps", Outcome.TASK_PROGRESS)
    await interventions.settle(PEOPLE[0], record, Outcome.TASK_PROGRESS, contribute=True)  # a retried write
    assert await pool_now(population) == {"create_microsteps": (1, 1, 1)}
    await interventions.settle(PEOPLE[0], record, Outcome.ABANDONED, contribute=True)  # "actually it didn't"
    assert await pool_now(population) == {"create_microsteps": (1, 0, 1)}
    assert await population.contributions(PEOPLE[0]) == {"starting|create_microsteps": {"tries": 1, "successes": 0}}


async def test_forgetting_a_person_subtracts_exactly_their_contributions(interventions: InterventionMemory,
                                                                         stack: MemoryStack) -> None:
    population = interventions.population
    for i, user in enumerate(PEOPLE):
        for _ in range(i + 1):
            await tried(interventions, user, "create_microsteps", Outcome.TASK_PROGRESS if i % 2 else Outcome.ABANDONED)
        await tried(interventions, user, "schedule_checkin", Outcome.RE_ENGAGED)
    before = await pool_now(population)
    assert before == {"create_microsteps": (21, 12, 6), "schedule_checkin": (6, 6, 6)}
    mine = await population.contributions(PEOPLE[3])
    assert mine == {"starting|create_microsteps": {"tries": 4, "successes": 4},
                    "starting|schedule_checkin": {"tries": 1, "successes": 1}}
    exported = await interventions.export(PEOPLE[3])
    assert {"key": population.contributions_key(PEOPLE[3]), "population_contributions": mine} in exported

    await PersonData(stack.registry, CoachingStore(stack.client, "unused")).forget(PEOPLE[3])
    assert await pool_now(population) == {"create_microsteps": (17, 8, 5), "schedule_checkin": (5, 5, 5)}
    assert await population.contributions(PEOPLE[3]) == {}
    assert not await stack.client.exists(population.contributions_key(PEOPLE[3]))
    # Everyone forgotten: nothing left in the pool at all.
    for user in PEOPLE:
        await interventions.forget(user)
    assert await pool_now(population) == {}


async def test_turning_consent_off_takes_the_counts_back_and_old_records_stay_out(
        interventions: InterventionMemory, stack: MemoryStack) -> None:
    population = interventions.population
    data = PersonData(stack.registry, CoachingStore(stack.client, "unused"))
    assert await data.contributes(PEOPLE[0])  # on by default
    record = await tried(interventions, PEOPLE[0], "create_microsteps", Outcome.TASK_PROGRESS)
    await tried(interventions, PEOPLE[1], "create_microsteps", Outcome.TASK_PROGRESS)
    await data.update_profile(PEOPLE[0], {"consent_pooled_learning": False})
    assert not await data.contributes(PEOPLE[0])
    assert await pool_now(population) == {"create_microsteps": (1, 1, 1)}
    # Correcting a record pooled before the withdrawal touches neither the pool nor their counts.
    await data.correct_outcome(PEOPLE[0], record, Outcome.ABANDONED)
    assert await pool_now(population) == {"create_microsteps": (1, 1, 1)}
    assert await population.contributions(PEOPLE[0]) == {}
    # Back on: only new outcomes count, under a new token.
    await data.update_profile(PEOPLE[0], {"consent_pooled_learning": True})
    await data.correct_outcome(PEOPLE[0], record, Outcome.TASK_COMPLETED)
    assert await pool_now(population) == {"create_microsteps": (2, 2, 2)}


async def test_a_retraction_cut_short_is_finished_by_the_next(interventions: InterventionMemory,
                                                              stack: MemoryStack,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    population = interventions.population
    for user in PEOPLE[:2]:
        await tried(interventions, user, "create_microsteps", Outcome.TASK_PROGRESS)

    async def lost(*_: object) -> None:
        raise ConnectionError("Redis went away mid-retraction")

    monkeypatch.setattr(population, "push", lost)
    with pytest.raises(ConnectionError):
        await population.retract(PEOPLE[0])
    assert await pool_now(population) == {"create_microsteps": (2, 2, 2)}  # not yet taken back...
    monkeypatch.undo()
    await population.forget(PEOPLE[0])  # ...and the next attempt finishes it, exactly once
    assert await pool_now(population) == {"create_microsteps": (1, 1, 1)}
    await population.forget(PEOPLE[0])
    assert await pool_now(population) == {"create_microsteps": (1, 1, 1)}
