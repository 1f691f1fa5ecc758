"""A Gemini Live voice session end to end: the real google-genai client against the fake Live
server (TLS, real wire JSON), the real graph, tools and Redis memories."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from google import genai

from app.eval.fakes.live import FakeLiveServer, LiveTurn
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from tests.companion_fixtures import Rig
from tests.conftest import element
from tests.voice_fixtures import Collector, tone
from voice.base import VoiceUnavailable
from voice.events import AudioOut, Ended, ErrorEvent, Interrupted, MemoryUsed, PlanInfo, ToolRan, Transcript
from voice.link import CompanionLink
from voice.live import LiveOptions, LiveVoiceSession

USER = "lea"
STUCK = "I can't start my essay, it's too big"
FAST = LiveOptions(reconnect_backoff_s=0.01, checkin_poll_s=0.1, reconnect_attempts=2)


async def start(rig: Rig, fake: FakeLiveServer, options: LiveOptions = FAST
                ) -> tuple[LiveVoiceSession, Collector, asyncio.Task[None]]:
    sink = Collector()
    client = genai.Client(api_key="fake-key", http_options=fake.http_options())
    session = LiveVoiceSession(CompanionLink(rig.session(USER)), client, sink, tools=rig.deps.tools, options=options)
    runner = asyncio.create_task(session.run())
    await fake.wait_until(lambda: len(fake.setups) >= 1)
    return session, sink, runner


async def say(session: LiveVoiceSession, fake: FakeLiveServer, turns_done: int) -> None:
    for offset in range(0, 12_800, 3_200):  # 400 ms of speech in 100 ms frames, then "done talking"
        await session.push_audio(tone()[offset:offset + 3_200])
    await session.end_of_speech()
    await fake.wait_turns(turns_done)


async def settle(session: LiveVoiceSession) -> None:
    """Let the graph work the turn started finish (heard runs, tool runs)."""
    for _ in range(100):
        if not session._tasks:  # noqa: SLF001 - the test waits for the session's own background steps
            return
        await asyncio.sleep(0.02)


async def test_a_spoken_session_runs_through_the_graph_and_leaves_memories(rig: Rig, fake: FakeLiveServer) -> None:
    await element(rig.stack, ProfileMemory).update(USER, {"name": "Lea"})
    fake.script(
        LiveTurn(transcript=STUCK, tool_calls=[{"name": "create_microsteps", "args": {"task": "my essay"}}],
                 reply="Let's make it tiny. Open the document.", audio_ms=500),
        LiveTurn(transcript="that helped, I got started", reply="That counts! Nice work.", audio_ms=300),
        LiveTurn(transcript="now I keep getting distracted", reply="Let's take a short pause together now.",
                 audio_ms=1_000, interrupt_after_chunks=2, go_away_after=True),
        LiveTurn(transcript="okay I'm back", reply="Welcome back.", audio_ms=300),
    )
    session, sink, runner = await start(rig, fake)

    setup = fake.setups[0]
    instruction = str(setup.get("systemInstruction"))
    assert "Lea" in instruction  # load_context's profile is the system instruction
    for wanted in ("inputAudioTranscription", "outputAudioTranscription", "sessionResumption",
                   "contextWindowCompression"):
        assert wanted in setup, wanted
    declared = {d["name"] for tool in setup["tools"] for d in tool.get("functionDeclarations", [])}
    assert {"create_microsteps", "suggest_break", "schedule_checkin"} <= declared

    # Turn 1: transcript → graph retrieval → context update; tool call → graph tool → tool response.
    await say(session, fake, 1)
    await settle(session)
    (response,) = fake.tool_responses
    (answer,) = response["functionResponses"]
    assert "essay" in str(answer["response"]).lower()
    pending = await element(rig.stack, InterventionMemory).pending(USER, limit=5)
    assert [(p.tool_name, p.user_context) for p in pending] == [("create_microsteps", STUCK)]
    assert fake.context_updates, "the few-shot context must reach the model"
    assert fake.client_contents == []  # ...without a (fake) user turn
    assert any(isinstance(e, AudioOut) for e in sink.events)
    user_lines = [t.text for t in sink.of(Transcript) if t.role == "user" and t.final]
    assert STUCK in user_lines
    assert any(t.role == "assistant" and t.final and "tiny" in t.text for t in sink.of(Transcript))
    assert any(isinstance(e, ToolRan) and e.name == "create_microsteps" for e in sink.events)
    assert any(isinstance(e, PlanInfo) and e.step for e in sink.events)  # the page's current step

    # Turn 2: the outcome settles from the transcribed words, through record_outcome.
    await say(session, fake, 2)
    await settle(session)
    stored = await element(rig.stack, InterventionMemory).get(USER, pending[0].id)
    assert stored.outcome in (Outcome.TASK_PROGRESS, Outcome.TASK_COMPLETED, Outcome.RE_ENGAGED)
    assert any(isinstance(e, MemoryUsed) for e in sink.events)

    # Turn 3: interrupted mid-reply, then goAway: resumed on a new connection with the handle.
    await say(session, fake, 3)
    assert sink.of(Interrupted)
    await fake.wait_until(lambda: len(fake.setups) == 2)
    assert fake.resumed_with[0] is None and fake.resumed_with[1] is not None
    assert fake.history_of(fake.resumed_with[1])  # the server-side conversation carried over

    # Turn 4 on the resumed connection, then the end: the reflect step runs.
    audio_before = len(sink.of(AudioOut))
    await say(session, fake, 4)
    assert len(sink.of(AudioOut)) > audio_before
    reflection = await session.end()
    await asyncio.wait_for(runner, 5)
    assert sink.of(Ended) and sink.of(Ended)[0].reflection == reflection
    assert reflection and await element(rig.stack, ReflectionMemory).load(USER, None)
    assert session.metrics["memory_path_ms"] and session.metrics["first_audio_ms"]


async def test_a_cancelled_tool_call_gets_no_response(rig: Rig, fake: FakeLiveServer) -> None:
    fake.script(LiveTurn(transcript=STUCK, tool_calls=[{"name": "suggest_break", "args": {}}], reply="Okay."))
    session, sink, runner = await start(rig, fake)
    release = asyncio.Event()
    run_tools = session.link.tool_calls

    async def slow_tool_calls(calls: Any) -> Any:  # holds the tool run until the server has cancelled it
        await release.wait()
        return await run_tools(calls)

    session.link.tool_calls = slow_tool_calls  # type: ignore[method-assign]
    for offset in range(0, 12_800, 3_200):
        await session.push_audio(tone()[offset:offset + 3_200])
    await session.end_of_speech()
    await asyncio.sleep(0.3)
    await fake.cancel_tool_calls(["function-call-1"])
    release.set()
    await fake.wait_turns(1)
    await settle(session)
    assert fake.tool_responses == []
    assert not any(isinstance(e, ToolRan) for e in sink.events)
    await session.end()
    await asyncio.wait_for(runner, 5)


async def test_a_due_checkin_is_spoken_without_being_asked(rig: Rig, fake: FakeLiveServer) -> None:
    session, sink, runner = await start(rig, fake)
    await rig.deps.store.add_checkin(USER, time.time() - 1, "the essay")
    await fake.wait_turns(1)  # the note made the model speak
    assert any("Due now" in turn["text"] and "the essay" in turn["text"] for turn in _history(fake))
    assert await rig.deps.store.upcoming(USER) == []
    assert sink.of(AudioOut)
    await session.end()
    await asyncio.wait_for(runner, 5)


async def test_a_failed_checkin_poll_does_not_stop_check_ins(rig: Rig, fake: FakeLiveServer) -> None:
    session, sink, runner = await start(rig, fake)
    real_due_now, calls = session.link.due_now, []

    async def flaky_due_now() -> Any:  # the first poll fails (e.g. Redis blinked), later ones work
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return await real_due_now()

    session.link.due_now = flaky_due_now  # type: ignore[method-assign]
    await rig.deps.store.add_checkin(USER, time.time() - 1, "the essay")
    await fake.wait_turns(1)  # before: the ticker died with the first error and nothing was ever said
    assert any("the essay" in turn["text"] for turn in _history(fake)) and len(calls) >= 2
    await session.end()
    await asyncio.wait_for(runner, 5)


def _history(fake: FakeLiveServer) -> list[dict[str, str]]:
    return [turn for session in fake._handles.values() for turn in session.history] + [  # noqa: SLF001
        turn for conn in [fake._live] if conn is not None for turn in conn.session.history]  # noqa: SLF001


async def test_a_dropped_connection_reconnects_and_a_dead_service_ends_cleanly(rig: Rig,
                                                                            fake: FakeLiveServer) -> None:
    fake.script(LiveTurn(transcript=STUCK, reply="Okay."))
    session, sink, runner = await start(rig, fake)
    await say(session, fake, 1)
    await fake.drop_connection(1011)
    await fake.wait_until(lambda: len(fake.setups) == 2)
    assert fake.resumed_with[-1] is not None  # resumed, not started over
    await fake.stop()  # the service is gone for good
    with pytest.raises(VoiceUnavailable):
        await asyncio.wait_for(runner, 10)
    assert [e.code for e in sink.of(ErrorEvent)] == ["voice_unavailable"]
    # What was heard before the outage is in memory.
    assert (await rig.session(USER).graph.aget_state(session.link.session.config)).values["turn"] >= 2


async def test_a_crisis_heard_by_voice_gets_the_safety_reply_and_no_intervention(rig: Rig,
                                                                                 fake: FakeLiveServer) -> None:
    await element(rig.stack, ProfileMemory).update(USER, {"locale": "en-GB"})
    fake.script(LiveTurn(transcript="i don't want to be alive anymore", reply="I'm here with you.", audio_ms=300),
                LiveTurn(reply="Please call Samaritans on 116 123.", audio_ms=300))
    session, sink, runner = await start(rig, fake)
    await say(session, fake, 1)
    await settle(session)
    # The instruction update tells the Live model to give the safety reply (UK resources), no tool...
    await fake.wait_until(lambda: bool(fake.context_updates))
    latest = str(fake.context_updates[-1])
    assert "SAFETY FIRST" in latest and "116 123" in latest and "Do not call any tool" in latest
    # ...and a note makes it say so now, even if it had started answering.
    await fake.wait_until(lambda: any("SAFETY FIRST" in t["text"] for t in _history(fake)))
    assert await element(rig.stack, InterventionMemory).pending(USER, limit=5) == []  # never an intervention
    events = await rig.deps.store.safety_events(USER)
    assert [(e.kind, e.source) for e in events] == [("suicide", "voice")]
    await session.end()
    await asyncio.wait_for(runner, 5)
