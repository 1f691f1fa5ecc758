"""The graph's voice runs (``voice.link``), without any audio: what a Gemini Live session
gets from the graph at connect, on each heard turn and on each tool call, and what it
leaves in memory. Real Redis, the real graph and tools."""

from __future__ import annotations

import pytest

from graphs.session import MEMORY_OFFLINE_NOTICE
from memories.errors import InvalidInput, MemoryUnavailable
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from tests.companion_fixtures import Rig
from tests.conftest import element
from voice.link import OFFLINE_REPLY, CompanionLink, ToolCall

USER = "vic"
STUCK = "I can't start my essay, it's too big"


async def test_connect_instruction_carries_the_persons_profile(rig: Rig) -> None:
    await element(rig.stack, ProfileMemory).update(USER, {"name": "Vic", "timezone": "Europe/Berlin"})
    link = CompanionLink(rig.session(USER))
    instruction, due = await link.open()
    assert "Vic" in instruction and "Europe/Berlin" in instruction
    assert due == []


async def test_heard_words_settle_outcomes_and_tool_calls_record_interventions(rig: Rig) -> None:
    link = CompanionLink(rig.session(USER))
    await link.open()
    first = await link.heard(STUCK)
    assert first.suggested is not None and first.settled == []
    assert first.why and first.why.startswith(("helped you ", "helps ", "usually suits", "trying "))  # why, in words

    (result,) = await link.tool_calls([ToolCall(id="c1", name="create_microsteps", args={"task": "my essay"})])
    assert result.ok and "essay" in result.content.lower()
    pending = await element(rig.stack, InterventionMemory).pending(USER, limit=5)
    assert [p.tool_name for p in pending] == ["create_microsteps"]
    assert pending[0].user_context == STUCK  # the words the call answered
    assert (await link.plan_info()).step  # the plan the tool made is the page's current step

    answer = await link.heard("that helped, I got started", said="Here is step one: open the document.")
    assert [s["id"] for s in answer.settled] == [pending[0].id]
    stored = await element(rig.stack, InterventionMemory).get(USER, pending[0].id)
    assert stored.outcome in (Outcome.TASK_PROGRESS, Outcome.TASK_COMPLETED, Outcome.RE_ENGAGED)

    # The next similar moment retrieves that success as few-shot context for the Live model.
    again = await link.heard("I can't get started on my history essay")
    assert pending[0].id in [m.id for m in again.memories]
    assert "What helped this person" in again.instruction and "create_microsteps" in again.instruction

    reflection = await link.end()
    assert reflection  # the session's lesson


async def test_context_goes_out_before_the_run_finishes(rig: Rig) -> None:
    session = rig.session(USER)
    link = CompanionLink(session)
    await link.open()
    saved_turns: list[int] = []

    async def on_context(instruction: str) -> None:
        # The turn's checkpoint is written when the run ends ("exit"): still the previous turn here.
        saved_turns.append((await rig.graph.aget_state(session.config)).values["turn"])

    heard = await link.heard(STUCK, on_context=on_context)
    after = (await rig.graph.aget_state(session.config)).values["turn"]
    assert saved_turns == [after - 1]  # sent once, before this turn was saved
    assert "Suggested for what they just said" in heard.instruction


async def test_a_step_completed_by_a_tool_call_settles_the_plan_intervention(rig: Rig) -> None:
    link = CompanionLink(rig.session(USER))
    await link.open()
    await link.heard("the kitchen is a mess and I don't know where to start")
    await link.tool_calls([ToolCall(id="a", name="create_microsteps", args={"task": "clean the kitchen"})])
    made = (await element(rig.stack, InterventionMemory).pending(USER, limit=1))[0]
    await link.heard("okay I did the first one")
    # Two tool calls in one spoken turn: the second must not count the first's event again.
    (done,) = await link.tool_calls([ToolCall(id="b", name="mark_step_complete", args={})])
    assert done.ok
    stored = await element(rig.stack, InterventionMemory).get(USER, made.id)
    assert stored.outcome != Outcome.PENDING


async def test_bad_tool_calls_come_back_as_errors_not_crashes(rig: Rig) -> None:
    link = CompanionLink(rig.session(USER))
    await link.open()
    await link.heard(STUCK)
    bad = ToolCall(id="y", name="schedule_checkin", args={"minutes_from_now": "soon"})
    unknown, bad_args = await link.tool_calls([ToolCall(id="x", name="launch_rocket"), bad])
    assert not unknown.ok and "launch_rocket" in unknown.content
    assert not bad_args.ok
    with pytest.raises(InvalidInput):
        await link.heard("   ")


async def test_voice_and_text_share_one_session(rig: Rig) -> None:
    session = rig.session(USER)
    link = CompanionLink(session)
    await link.open()
    await link.heard(STUCK)
    thread = session.thread_id
    reply = await session.send("what time is it?")  # a text turn on the same thread: the full text path
    assert reply.thread_id == thread and reply.reply
    assert reply.decision.tool == "get_current_time"


async def test_a_text_turn_that_cannot_run_at_all_degrades_calmly(rig: Rig) -> None:
    # The offline voice path's text turn: when the session's in-process fallback fails too, the
    # link answers calmly and says memory is offline instead of ending the voice session.
    session = rig.session(USER)
    link = CompanionLink(session)

    async def unreachable(text: str) -> None:
        raise MemoryUnavailable("Redis is unavailable during a test")

    session.send = unreachable  # type: ignore[method-assign]
    result = await link.send_text("i cant start my essay")
    assert result.degraded and result.notice == MEMORY_OFFLINE_NOTICE and result.reply == OFFLINE_REPLY
    assert link.degraded
