"""The whole companion graph through CompanionSession: learning across sessions, isolation,
resuming after a restart, two processes on one Redis, and idle sessions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memories.embeddings import LocalMiniLMEmbeddings
from memories.errors import InvalidInput
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.reflections import ReflectionMemory
from memories.validation import user_tag
from tests.companion_fixtures import FAILURE_REPLY, SUCCESS_REPLY, Rig, fresh_namespace, namespace_of, open_rig
from tests.conftest import element

# Situations whose general prior favours create_microsteps; this person is helped only by a break.
STARTING = ["I can't get myself to start cleaning my room", "The laundry pile is huge and I keep avoiding it",
            "I need to start my tax forms but I just can't"]
HELPS = "suggest_break"


@pytest.fixture
async def rig(redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(redis_url, minilm, fresh_namespace(), tmp_path) as opened:
        yield opened


def interventions(rig: Rig) -> InterventionMemory:
    return element(rig.stack, InterventionMemory)


async def test_over_three_sessions_the_choice_shifts_to_what_helps_this_person(rig: Rig) -> None:
    chosen_per_session: list[list[str | None]] = []
    threads = set()
    for number in range(3):
        session = rig.session("sam", seed=f"learn:{number}")
        await session.open()
        threads.add(session.thread_id)
        tools: list[str | None] = []
        for turn in range(6):
            result = await session.send(STARTING[turn % 3])
            tool = result.decision.tool
            tools.append(tool)
            answer = await session.send(SUCCESS_REPLY if tool == HELPS else FAILURE_REPLY)
            assert [s["id"] for s in answer.settled]  # every answer settled the intervention before it
        ending = await session.end()
        assert ending.ended
        chosen_per_session.append(tools)

    first, last = (tools.count(HELPS) for tools in (chosen_per_session[0], chosen_per_session[-1]))
    assert last >= 4 and last > first, chosen_per_session
    assert len(threads) == 3  # one thread per session
    # The last situation turn recalled this person's own successes with the break.
    helped = [e for e in result.few_shot if e.tool == HELPS and not e.contrast]
    assert helped and all(e.outcome in ("task_progress", "task_completed", "re_engaged") for e in helped)
    for example in result.few_shot:
        await interventions(rig).get("sam", example.id)  # raises unless it is one of Sam's own records
    assert {e.id for e in helped} <= set(result.used_memory_ids)
    lessons = [r.insight for r in await element(rig.stack, ReflectionMemory).recent("sam")]
    assert any("A short break helped" in lesson for lesson in lessons), lessons

    # Another person in the same namespace starts from the general prior, with none of Sam's history.
    leo = rig.session("leo", seed="learn:0")
    fresh = await leo.send(STARTING[0])
    assert fresh.few_shot == [] and not fresh.decision.from_memory
    assert all(b["similar"] == 0 for b in fresh.decision.beliefs.values())
    assert fresh.thread_id not in threads
    assert len([i for i in await interventions(rig).export("leo") if i.get("tool_name")]) == 1


async def test_a_session_resumes_after_the_process_restarts(
    redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    async with open_rig(redis_url, minilm, namespace, tmp_path) as before:
        session = before.session("maya")
        first = await session.send("Everything is too loud and I'm overwhelmed")
        thread, pending_tool = first.thread_id, first.decision.tool
        [pending] = await interventions(before).pending("maya")

    async with open_rig(redis_url, minilm, namespace, tmp_path) as after:  # new clients, new graph
        resumed = after.session("maya")
        assert await resumed.open() is None
        assert resumed.thread_id == thread
        state = await after.graph.aget_state(resumed.config)
        assert state.values["messages"][0].content == "Everything is too loud and I'm overwhelmed"
        assert state.values["last_intervention_id"] == pending.id

        answer = await resumed.send(SUCCESS_REPLY)
        assert answer.thread_id == thread
        assert answer.settled == [{"kind": "outcome", "id": pending.id, "outcome": answer.evidence.outcome}]
        stored = await interventions(after).get("maya", pending.id)
        assert stored.outcome in (Outcome.TASK_PROGRESS, Outcome.TASK_COMPLETED, Outcome.RE_ENGAGED)
        assert stored.tool_name == pending_tool
        state = await after.graph.aget_state(resumed.config)
        assert state.values["turn"] == 2


async def test_two_processes_sharing_redis_serve_one_consistent_session(
    redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    async with open_rig(redis_url, minilm, namespace, tmp_path) as one, \
            open_rig(redis_url, minilm, namespace, tmp_path) as two:
        assert one.stack.client is not two.stack.client
        in_one, in_two = one.session("maya"), two.session("maya")
        first = await in_one.send("I can't get myself to start my essay")
        second = await in_two.send(SUCCESS_REPLY)  # the other process reads the same pending intervention
        assert second.thread_id == first.thread_id
        [settled] = second.settled
        assert (await interventions(one).get("maya", settled["id"])).outcome is not Outcome.PENDING
        third = await in_one.send("Now I'm overwhelmed by the noise")
        assert third.thread_id == first.thread_id

        for rig in (one, two):
            values = (await rig.graph.aget_state(in_one.config)).values
            humans = [m.content for m in values["messages"] if m.type == "human"]
            assert humans == ["I can't get myself to start my essay", SUCCESS_REPLY, "Now I'm overwhelmed by the noise"]
            assert values["turn"] == 3
        kinds = [e["kind"] for e in values["session_log"]]
        assert kinds == ["intervention", "outcome", "intervention"]


async def test_an_idle_session_is_ended_and_the_next_one_starts_fresh(rig: Rig) -> None:
    session = rig.session("maya")
    first = await session.send("I can't get myself to start my essay")
    [pending] = await interventions(rig).pending("maya")
    # Half an hour and a minute without a word (the default timeout is 30 minutes).
    key = f"{namespace_of(rig.stack)}:session:{{{user_tag('maya')}}}"
    assert await rig.stack.client.exists(key)
    await rig.stack.client.hset(key, "last_activity", str(time.time() - 31 * 60))

    later = rig.session("maya")  # e.g. the app started again later that day
    ended = await later.open()
    assert ended is not None and ended.ended and ended.thread_id == first.thread_id
    assert ended.reply.startswith("Session saved.")
    assert later.thread_id is not None and later.thread_id != first.thread_id
    old = (await rig.graph.aget_state({"configurable": {"thread_id": first.thread_id, "user_id": "maya"}})).values
    assert old["ended"] is True
    assert (await interventions(rig).get("maya", pending.id)).outcome is Outcome.UNKNOWN  # closed, not left dangling

    again = await later.send("hello again")
    assert again.thread_id == later.thread_id
    values = (await rig.graph.aget_state(later.config)).values
    assert [m.content for m in values["messages"] if m.type == "human"] == ["hello again"]


async def test_an_active_session_is_not_ended_by_open(rig: Rig) -> None:
    session = rig.session("maya")
    first = await session.send("I can't get myself to start my essay")
    again = rig.session("maya")
    assert await again.open() is None
    assert again.thread_id == first.thread_id


async def test_messages_are_validated_before_a_turn_runs(rig: Rig) -> None:
    session = rig.session("maya")
    with pytest.raises(InvalidInput, match="empty"):
        await session.send("   ")
    with pytest.raises(InvalidInput, match="limit is 2000"):
        await session.send("x" * 2001)
    with pytest.raises(InvalidInput):
        rig.session(" padded ")


async def test_a_turns_scratch_is_in_its_result_but_never_in_the_checkpoint(rig: Rig) -> None:
    # The turn contract: the decision (with the policy's beliefs), the neighbours, the few-shot
    # rows, the evidence and the timings are typed and handed on, and a resumed session needs none.
    session = rig.session("sam", seed="scratch")
    first = await session.send(STARTING[0])
    await session.send(SUCCESS_REPLY)
    result = await session.send(STARTING[1])
    assert result.decision is not None and result.decision.suggested == result.decision.tool
    assert result.decision.beliefs and result.few_shot and result.evidence is not None and result.timings
    saved = (await rig.graph.aget_state(session.config)).values
    scratch = {"decision", "few_shot", "neighbors", "relevance", "evidence", "due", "settled", "timings"}
    assert not scratch & set(saved), scratch & set(saved)
    assert saved["last_intervention_id"] and saved["messages"] and first.thread_id == result.thread_id
    # What is saved is small: the neighbours and beliefs were the bulk of a checkpoint, and a
    # run's tool calls and results leave with the run (the words stay, the newest keep_messages).
    assert len(repr(saved)) < 20_000
    assert all(m.type in ("human", "ai") and not getattr(m, "tool_calls", None) for m in saved["messages"])
    assert [m.type for m in saved["messages"]] == ["human", "ai"] * 3
