"""Learning through the whole graph, three sessions per behaviour: tastes that change, a new
person starting from what helped people like them (privately, with consent), and the why line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.person_data import PersonData
from graphs.turn import Decision
from memories.embeddings import LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from tests.companion_fixtures import FAILURE_REPLY, SUCCESS_REPLY, Rig, fresh_namespace, open_rig
from tests.conftest import element
from tools.store import CoachingStore

STARTING = ["I can't get myself to start cleaning my room", "The laundry pile is huge and I keep avoiding it",
            "I need to start my tax forms but I just can't"]
TURNS = 6


@pytest.fixture
async def rig(redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(redis_url, minilm, fresh_namespace(), tmp_path) as opened:
        yield opened


async def session_of(rig: Rig, user: str, number: int, helps: set[str]) -> list[Decision]:
    """One session of TURNS struggles; the person is helped exactly by the tools in ``helps``."""
    session = rig.session(user, seed=f"{user}:{number}")
    await session.open()
    decisions = []
    for turn in range(TURNS):
        result = await session.send(STARTING[turn % len(STARTING)])
        decision = result.decision
        assert decision is not None and decision.source == "policy", decision
        decisions.append(decision)
        answer = await session.send(SUCCESS_REPLY if decision.tool in helps else FAILURE_REPLY)
        assert answer.settled, "every answer settles the suggestion before it"
    await session.end()
    return decisions


def tools(decisions: list[Decision]) -> list[str | None]:
    return [d.tool for d in decisions]


async def test_when_what_helped_stops_helping_the_choice_moves_on_within_a_session(rig: Rig) -> None:
    # Sessions 1-2: a break is what helps (against the general prior, which favours microsteps).
    for number in range(2):
        learned = await session_of(rig, "tess", number, {"suggest_break"})
    assert tools(learned)[-3:].count("suggest_break") >= 2, tools(learned)
    # Session 3: tastes changed; the break no longer helps, a check-in or microsteps do.
    changed = await session_of(rig, "tess", 2, {"create_microsteps", "schedule_checkin"})
    assert tools(changed)[:2].count("suggest_break") >= 1, tools(changed)  # it still led at first...
    assert tools(changed)[-3:].count("suggest_break") <= 1, tools(changed)  # ...and lost the lead in the session
    stats = (await element(rig.stack, InterventionMemory).success_rates("tess"))["suggest_break"]
    assert stats.settled >= 6  # the old successes are still counted; the policy just weighs them less now


async def contributed(rig: Rig, people: int, tool: str = "suggest_break") -> None:
    """``people`` others, each helped by ``tool`` in moments like these three times, and not
    helped by the general favourite (microsteps) the once they tried it."""
    interventions = element(rig.stack, InterventionMemory)
    for i in range(people):
        tries = [(tool, said, Outcome.RE_ENGAGED) for said in STARTING]
        tries.append(("create_microsteps", STARTING[0], Outcome.ABANDONED))
        for used, said, outcome in tries:
            record = await interventions.save(f"other{i}", {"text": "Let's try this.", "tool_name": used,
                                                            "user_context": said})
            await interventions.settle(f"other{i}", record, outcome, contribute=True)


async def test_a_newcomer_starts_from_what_helped_five_people_like_them(rig: Rig) -> None:
    await contributed(rig, 4)
    early = await session_of(rig, "ivy", 0, {"suggest_break"})
    assert all(d.evidence != "people" for d in early)  # four people: the pool is not used yet
    await contributed(rig, 5)  # now five different people contributed (the first four again + one)
    population = element(rig.stack, InterventionMemory).population
    assert (await population.counts("starting"))["suggest_break"].people >= 5

    first = await session_of(rig, "nia", 0, {"suggest_break"})
    assert first[0].tool == "suggest_break" and first[0].why == "helps most people in moments like this"
    assert tools(first).count("suggest_break") >= 4, tools(first)
    # Her own evidence soon speaks for itself...
    later = await session_of(rig, "nia", 1, {"suggest_break"})
    assert later[-1].evidence == "you" and str(later[-1].why).startswith("helped you "), later[-1]
    # Someone the pool's favourite does not help starts there too, and their own evidence outweighs it.
    zoe = [await session_of(rig, "zoe", number, {"schedule_checkin", "create_microsteps"}) for number in range(3)]
    assert zoe[0][0].tool == "suggest_break"
    assert "suggest_break" not in tools(zoe[2])[-3:], [tools(z) for z in zoe]
    third = await session_of(rig, "nia", 2, {"suggest_break"})
    # Forgetting her takes back exactly what her sessions added to the pool.
    mine = await population.contributions("nia")
    assert sum(c["tries"] for c in mine.values()) == 3 * TURNS == len(first + later + third)
    clusters = {key.partition("|")[0] for key in mine}

    async def pool() -> dict[str, tuple[int, int, int]]:
        return {f"{c}|{t}": (n.tries, n.successes, n.people)
                for c in clusters for t, n in (await population.counts(c)).items()}

    before = await pool()
    await PersonData(rig.stack.registry, CoachingStore(rig.stack.client, "unused")).forget("nia")
    after = await pool()
    for key, counts in mine.items():
        was = before[key]
        assert after.get(key, (0, 0, 0)) == (was[0] - counts["tries"], was[1] - counts["successes"], was[2] - 1)
    assert {k: v for k, v in before.items() if k not in mine} == {k: v for k, v in after.items() if k not in mine}


async def test_someone_who_said_no_adds_nothing_to_the_pool(rig: Rig) -> None:
    await element(rig.stack, ProfileMemory).update("omar", {"consent_pooled_learning": False})
    for number in range(3):
        await session_of(rig, "omar", number, {"create_microsteps"})
    population = element(rig.stack, InterventionMemory).population
    assert await population.contributions("omar") == {}
    for cluster in ("starting", "chores"):
        assert await population.counts(cluster) == {}
    assert (await element(rig.stack, InterventionMemory).success_rates("omar"))  # his own learning goes on
