"""Degraded mode: Redis stops mid-session; the conversation goes on without memory, the writes
wait in the outbox, and everything lands in Redis when it comes back.

Each test stops and restarts its own embedded server (never the shared one of the test run).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from app.embedded_redis import EmbeddedRedis
from graphs.nodes.common import MEMORY_OFFLINE_NOTICE
from graphs.outbox import Outbox
from graphs.session import CompanionSession, TurnResult
from memories.embeddings import LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from memories.outcomes import FAILED, SUCCEEDED, Outcome
from memories.reflections import ReflectionMemory
from tests.companion_fixtures import FAILURE_REPLY, SUCCESS_REPLY, fresh_namespace, open_rig
from tests.conftest import element

MAX_DEGRADED_TURN_S = 3.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    yield own
    own.stop()


async def timed(session: CompanionSession, text: str) -> TurnResult:
    start = time.perf_counter()
    result = await session.send(text)
    assert time.perf_counter() - start < MAX_DEGRADED_TURN_S, f"turn took {time.perf_counter() - start:.1f} s"
    return result


def calm(result: TurnResult) -> None:
    """A reply, plus the one-line notice, and nothing that looks like an error."""
    assert result.degraded and result.reply.strip()
    assert result.notice == MEMORY_OFFLINE_NOTICE and "\n" not in result.notice
    for text in (result.reply, result.notice):
        for leak in ("Traceback", "Error", "redis", "Redis", "127.0.0.1"):
            assert leak not in text


async def test_redis_stopping_mid_session_loses_nothing(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    async with open_rig(server.url, minilm, namespace, tmp_path) as rig:
        session = rig.session("maya")
        before = await session.send("I can't get myself to start my essay")
        assert not before.degraded and before.notice is None
        [first] = await element(rig.stack, InterventionMemory).pending("maya")

        server.stop()
        helped = await timed(session, SUCCESS_REPLY)  # settles the first intervention: queued
        calm(helped)
        situation = await timed(session, "Everything is too loud and I'm overwhelmed")
        calm(situation)
        assert situation.decision.source == "policy"  # still chooses and helps
        failed = await timed(session, FAILURE_REPLY)
        calm(failed)
        memory_ops = [w for w in rig.deps.outbox.pending("maya") if w.op in ("settle", "record_intervention")]
        assert [w.op for w in memory_ops] == ["settle", "record_intervention", "settle"]
        second_id = memory_ops[1].intervention_id  # type: ignore[union-attr]

        server.start()  # same port, same data directory
        back = await session.send("I need to start my tax forms but I just can't")
        assert not back.degraded and back.notice is None
        assert len(rig.deps.outbox) == 0

        memory = element(rig.stack, InterventionMemory)
        assert (await memory.get("maya", first.id)).outcome in SUCCEEDED
        second = await memory.get("maya", second_id)
        assert second.user_context == "Everything is too loud and I'm overwhelmed" and second.outcome in FAILED
        assert [p.user_context for p in await memory.pending("maya")] == [
            "I need to start my tax forms but I just can't"]

        # The conversation held in memory during the outage was written back to the Redis thread.
        values = (await rig.graph.aget_state(session.config)).values
        assert [m.content for m in values["messages"] if m.type == "human"] == [
            "I can't get myself to start my essay", SUCCESS_REPLY, "Everything is too loud and I'm overwhelmed",
            FAILURE_REPLY, "I need to start my tax forms but I just can't"]
        log = [(e["kind"], e["id"]) for e in values["session_log"]]
        assert log[:4] == [("intervention", first.id), ("outcome", first.id), ("intervention", second_id),
                           ("outcome", second_id)]
        assert len(log) == 5 and len(set(log)) == 5  # nothing doubled by the write-back
        thread = session.thread_id

    async with open_rig(server.url, minilm, namespace, tmp_path) as restarted:  # and a new process resumes it
        resumed = restarted.session("maya")
        await resumed.open()
        assert resumed.thread_id == thread


async def test_a_session_that_starts_and_ends_during_an_outage_is_saved_later(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    async with open_rig(server.url, minilm, fresh_namespace(), tmp_path) as rig:
        server.stop()
        session = rig.session("maya")
        assert await session.open() is None  # no error: the session starts without memory
        calm(await timed(session, "I can't get myself to start my essay"))
        calm(await timed(session, SUCCESS_REPLY))
        start = time.perf_counter()
        ending = await session.end()
        assert time.perf_counter() - start < MAX_DEGRADED_TURN_S
        assert ending.ended and ending.reflection and ending.reply.startswith("Session saved.")
        ops = [w.op for w in rig.deps.outbox.pending("maya")]
        memory_ops = {"record_intervention", "settle", "update_state", "reflection"}
        assert [op for op in ops if op in memory_ops] == ["record_intervention", "settle", "update_state",
                                                          "reflection"]

        server.start()
        later = rig.session("maya")
        result = await later.send("hello")
        assert not result.degraded and len(rig.deps.outbox) == 0
        rows = await element(rig.stack, InterventionMemory).export("maya")
        [stored] = [i for i in rows if i.get("user_context") == "I can't get myself to start my essay"]
        assert Outcome(stored["outcome"]) in SUCCEEDED
        [reflection] = await element(rig.stack, ReflectionMemory).recent("maya")
        assert reflection.insight == ending.reflection


async def test_a_session_ended_during_an_outage_stays_ended(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    async with open_rig(server.url, minilm, fresh_namespace(), tmp_path) as rig:
        session = rig.session("maya")
        first = await session.send("I can't get myself to start my essay")
        [pending] = await element(rig.stack, InterventionMemory).pending("maya")
        server.stop()
        calm(await timed(session, SUCCESS_REPLY))
        ending = await session.end()
        assert ending.ended

        server.start()
        result = await session.send("Everything is too loud and I'm overwhelmed")
        assert not result.degraded
        assert result.thread_id != first.thread_id  # a new session, not the ended one resumed
        await session.end()
        # The outcome reported during the outage stands: nothing re-settled it as unknown.
        assert (await element(rig.stack, InterventionMemory).get("maya", pending.id)).outcome in SUCCEEDED


async def test_a_session_begun_during_an_outage_is_adopted_when_redis_returns(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    namespace = fresh_namespace()
    async with open_rig(server.url, minilm, namespace, tmp_path) as rig:
        server.stop()
        session = rig.session("maya")
        calm(await timed(session, "I can't get myself to start my essay"))
        thread = session.thread_id
        server.start()
        back = await session.send(SUCCESS_REPLY)
        assert not back.degraded
        # The thread begun without Redis is now the person's current session and is listed,
        # so `memory forget` deletes this conversation too.
        current = await session.directory.current("maya")
        assert current is not None and current.thread_id == thread
        assert thread in await session.directory.threads("maya")


async def test_plans_reminders_and_wins_asked_for_during_an_outage_are_kept(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    # They used to be dropped (0 of 4 stored) while the person was told nothing was lost.
    async with open_rig(server.url, minilm, fresh_namespace(), tmp_path) as rig:
        session = rig.session("maya")
        await session.send("hi")
        server.stop()
        made = await timed(session, "can you break cleaning my room into small steps for me?")
        assert made.tool == "create_microsteps" and made.plan and made.plan.current == 1
        assert made.notice and any(t in made.notice for t in ("save this as soon", "nothing you do is lost"))
        did = await timed(session, "ok did the first one")
        assert did.plan and did.plan.current == 2, (did.understanding, did.decision)  # the plan moves on
        asked = await timed(session, "remind me to take my meds in 10 minutes")
        assert asked.tool == "create_reminder"
        ops = [w.op for w in rig.deps.outbox.pending("maya")]
        assert {"save_plan", "complete_steps", "schedule"} <= set(ops)

        server.start()
        back = await session.send("what's next?")
        assert not back.degraded and len(rig.deps.outbox) == 0
        plan = await rig.deps.store.plan("maya")
        assert plan is not None and "room" in plan.task and plan.current == 1
        assert back.plan and back.plan.current == 2 and back.plan.steps == plan.steps
        [reminder] = [i for i in await rig.deps.store.upcoming("maya") if i.kind == "reminder"]
        assert "meds" in reminder.text


async def test_a_turn_re_run_after_redis_dies_mid_turn_writes_its_intervention_once(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    # Redis goes away after the turn's memory writes but before its checkpoint: the session re-runs
    # the whole turn on the in-memory fallback. The re-run used to record a second intervention
    # under a new id (13 duplicates in 30 kills); ids derived from the turn make it the same record.
    async with open_rig(server.url, minilm, fresh_namespace(), tmp_path) as rig:
        session = rig.session("maya")
        await session.send("hi")
        said = "I can't get myself to start my essay"

        saver = rig.graph.checkpointer
        save = saver.aput

        async def redis_dies_before_the_checkpoint(*args: object, **kwargs: object) -> object:
            if server.status().running:
                server.stop()
            return await save(*args, **kwargs)

        saver.aput = redis_dies_before_the_checkpoint  # type: ignore[method-assign]
        values = await session.run({"messages": [HumanMessage(content=said)], "live": None})
        saver.aput = save  # type: ignore[method-assign]
        assert values.get("last_intervention_id") and session._fallback is not None  # it was re-run
        server.start()
        await session.send("ok thanks")  # Redis is back: the state is written back, the outbox flushed
        assert len(rig.deps.outbox) == 0
        rows = await element(rig.stack, InterventionMemory).export("maya")
        assert [r.get("user_context") for r in rows].count(said) == 1, rows


async def test_a_full_outbox_is_said_plainly_and_the_conversation_goes_on(
    server: EmbeddedRedis, minilm: LocalMiniLMEmbeddings, tmp_path: Path
) -> None:
    async with open_rig(server.url, minilm, fresh_namespace(), tmp_path, outbox=Outbox(limit=2)) as rig:
        session = rig.session("maya")
        await session.send("hi")
        server.stop()
        results = [await timed(session, text) for text in (
            "can you break cleaning my room into small steps for me?", "ok did the first one",
            "I can't get myself to start my essay", "everything is too loud and I'm overwhelmed")]
        assert len(rig.deps.outbox) == 2  # the bound holds; nothing beyond it is pretended to be kept
        last = results[-1]
        assert last.reply.strip() and last.notice and "couldn't save" in last.notice
        for result in results:
            for leak in ("Traceback", "outbox", "Redis", "OutboxFull"):
                assert leak not in result.reply and leak not in (result.notice or "")
