"""The fake Gemini Live server, driven by the real google-genai client: if these pass, code written
against the SDK meets the fake exactly as it would meet the real API."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.eval.fakes.live import FakeLiveServer, LiveTurn

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
MICROSTEPS = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="create_microsteps",
            description="Break a task into tiny steps.",
            parameters_json_schema={"type": "object", "properties": {"task": {"type": "string"}}},
        )
    ]
)


def config(handle: str | None = None) -> types.LiveConnectConfig:
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction="You are a calm coach. Be brief.",
        tools=[MICROSTEPS],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=25_600, sliding_window=types.SlidingWindow(target_tokens=12_800)
        ),
    )


def pcm16k(ms: int, *, loud: bool) -> bytes:
    """Mic audio: a 440 Hz tone standing in for speech, or digital silence."""
    t = np.arange(16 * ms) / 16_000
    return (8000 * np.sin(2 * np.pi * 440 * t) * loud).astype("<i2").tobytes()


async def say(session: genai.live.AsyncSession, pcm: bytes, *, end: bool = True) -> None:
    for i in range(0, len(pcm), 3200):  # 100 ms chunks, as a microphone would send them
        await session.send_realtime_input(audio=types.Blob(data=pcm[i : i + 3200], mime_type="audio/pcm;rate=16000"))
    if end:
        await session.send_realtime_input(audio_stream_end=True)


@dataclass
class Heard:
    """What the client got for one turn, in arrival order."""

    kinds: list[str] = field(default_factory=list)
    input_chunks: list[str] = field(default_factory=list)
    output_text: str = ""
    audio: list[bytes] = field(default_factory=list)
    tool_call: types.LiveServerToolCall | None = None
    messages: list[types.LiveServerMessage] = field(default_factory=list)


async def receive_turn(session: genai.live.AsyncSession) -> Heard:
    """Everything up to turnComplete (or up to a toolCall, which needs an answer first)."""
    heard = Heard()
    async with asyncio.timeout(5):  # a fake that stops answering must fail the test, not hang it
        async for msg in session.receive():
            heard.messages.append(msg)
            content = msg.server_content
            if msg.tool_call:
                heard.kinds.append("toolCall")
                heard.tool_call = msg.tool_call
                break
            if msg.session_resumption_update or content is None:
                heard.kinds.append("other")
                continue
            if content.input_transcription:
                heard.kinds.append("input")
                heard.input_chunks.append(content.input_transcription.text or "")
            if content.output_transcription:
                heard.kinds.append("output")
                heard.output_text += content.output_transcription.text or ""
            for part in content.model_turn.parts if content.model_turn and content.model_turn.parts else []:
                assert part.inline_data is not None and part.inline_data.mime_type == "audio/pcm;rate=24000"
                heard.kinds.append("audio")
                heard.audio.append(part.inline_data.data or b"")
            for flag in ("interrupted", "generation_complete", "turn_complete"):
                if getattr(content, flag):
                    heard.kinds.append(flag)
    return heard


@pytest.fixture
async def live() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer() as server:
        yield server


def client_for(live: FakeLiveServer) -> genai.Client:
    return genai.Client(api_key="fake-key", http_options=live.http_options())


async def test_setup_is_recorded_as_sent_and_answered(live: FakeLiveServer) -> None:
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        assert session.setup_complete is not None
    setup = live.setups[0]
    assert setup["model"] == f"models/{MODEL}"
    assert setup["systemInstruction"]["parts"][0]["text"] == "You are a calm coach. Be brief."
    assert setup["tools"][0]["functionDeclarations"][0]["name"] == "create_microsteps"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert setup["sessionResumption"] == {}
    # Nested values keep the SDK's snake_case: the fake records them exactly as they came.
    assert setup["contextWindowCompression"] == {"trigger_tokens": 25_600, "sliding_window": {"target_tokens": 12_800}}
    assert (live.connections, live.api_keys, live.resumed_with) == (1, ["fake-key"], [None])


async def test_a_spoken_turn_is_transcribed_and_answered_with_audio(live: FakeLiveServer) -> None:
    live.script(LiveTurn(transcript="I can't start my homework today", reply="Let's open the math book.", audio_ms=500))
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(300, loud=True))
        heard = await receive_turn(session)
    assert "".join(heard.input_chunks) == "I can't start my homework today" and len(heard.input_chunks) >= 2
    assert heard.output_text == "Let's open the math book."
    assert np.abs(np.frombuffer(b"".join(heard.audio), "<i2")).max() > 0  # a tone, not silence
    assert [len(chunk) for chunk in heard.audio] == [4800] * 5  # 100 ms chunks of 24 kHz PCM16
    first_audio = heard.kinds.index("audio")
    assert set(heard.kinds[:first_audio]) == {"input"} and "input" not in heard.kinds[first_audio:]
    assert heard.kinds[-2:] == ["generation_complete", "turn_complete"]
    assert live.audio_in_bytes == 9600 and live.turns_done == 1


async def test_an_energy_endpoint_ends_the_turn_without_audio_stream_end(live: FakeLiveServer) -> None:
    live.script(LiveTurn(transcript="hello there", reply="Hi."))
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(1000, loud=False), end=False)  # the browser streams silence first
        await say(session, pcm16k(50, loud=True) + pcm16k(600, loud=False), end=False)  # a click is not speech
        await asyncio.sleep(0.1)
        assert live.turns_done == 0
        await say(session, pcm16k(300, loud=True) + pcm16k(600, loud=False), end=False)
        heard = await receive_turn(session)
        assert "".join(heard.input_chunks) == "hello there" and heard.output_text == "Hi."
        # Trailing silence after the endpoint, even with audioStreamEnd, opens no new turn.
        await say(session, pcm16k(300, loud=False))
        await asyncio.sleep(0.1)
    assert live.turns_done == 1


async def test_a_tool_call_waits_for_its_response(live: FakeLiveServer) -> None:
    live.script(
        LiveTurn(
            transcript="I can't start",
            tool_calls=[{"name": "create_microsteps", "args": {"task": "homework"}}],
            reply="First, open the book.",
        )
    )
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(300, loud=True))
        before = await receive_turn(session)
        assert before.kinds[-1] == "toolCall" and "audio" not in before.kinds
        call = before.tool_call.function_calls[0]  # type: ignore[union-attr]
        assert (call.name, call.args) == ("create_microsteps", {"task": "homework"}) and call.id
        await asyncio.sleep(0.1)
        assert live.turns_done == 0, "the fake answered before the tool response"
        await session.send_tool_response(
            function_responses=types.FunctionResponse(id=call.id, name=call.name, response={"steps": ["open book"]})
        )
        after = await receive_turn(session)
    assert after.output_text == "First, open the book." and after.kinds[-1] == "turn_complete"
    assert live.tool_responses[0]["functionResponses"][0] == {
        "id": call.id,
        "name": "create_microsteps",
        "response": {"steps": ["open book"]},
    }


async def test_a_cancelled_tool_call_is_not_waited_for(live: FakeLiveServer) -> None:
    live.script(LiveTurn(transcript="never mind", tool_calls=[{"name": "create_microsteps", "args": {}}]))
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(300, loud=True))
        call_id = (await receive_turn(session)).tool_call.function_calls[0].id  # type: ignore[union-attr]
        await live.cancel_tool_calls([call_id])  # type: ignore[list-item]
        heard = await receive_turn(session)
    assert heard.messages[0].tool_call_cancellation.ids == [call_id]  # type: ignore[union-attr]
    assert heard.output_text == "Okay." and live.tool_responses == []


async def test_an_interruption_cuts_the_audio_and_ends_the_turn(live: FakeLiveServer) -> None:
    live.script(
        LiveTurn(transcript="wait", reply="one two three four five six", audio_ms=1000, interrupt_after_chunks=2)
    )
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(300, loud=True))
        heard = await receive_turn(session)
    assert heard.kinds.count("audio") == 2
    assert heard.kinds[-2:] == ["interrupted", "turn_complete"] and "generation_complete" not in heard.kinds


async def test_go_away_then_resume_with_the_handle(live: FakeLiveServer) -> None:
    live.script(LiveTurn(transcript="first", go_away_after=True), LiveTurn(reply="Welcome back."))
    client = client_for(live)
    async with client.aio.live.connect(model=MODEL, config=config()) as session:
        await say(session, pcm16k(300, loud=True))
        await receive_turn(session)
        after: list[types.LiveServerMessage] = []
        with pytest.raises(errors.APIError) as closed:
            async for msg in session.receive():
                after.append(msg)
    handle = after[0].session_resumption_update.new_handle  # type: ignore[union-attr]
    assert after[0].session_resumption_update.resumable and handle  # type: ignore[union-attr]
    assert after[1].go_away.time_left == "1s"  # type: ignore[union-attr]
    assert closed.value.code == 1001

    async with client.aio.live.connect(model=MODEL, config=config(handle)) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="I'm back")]))
        heard = await receive_turn(session)
    assert heard.output_text == "Welcome back." and "input" not in heard.kinds
    assert live.resumed_with == [None, handle]
    assert [turn["text"] for turn in live.history_of(handle)] == ["first", "Okay.", "I'm back", "Welcome back."]
    assert live.setups[1]["sessionResumption"] == {"handle": handle}

    with pytest.raises(errors.APIError, match="Unknown session resumption handle") as unknown:
        async with client.aio.live.connect(model=MODEL, config=config("no-such-handle")):
            pass
    assert unknown.value.code == 1007


async def test_a_context_update_is_recorded_and_not_answered(live: FakeLiveServer) -> None:
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await session.send_context_update(system_instruction="Speak slowly.")
        await live.wait_until(lambda: len(live.context_updates) == 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(session.receive()), 0.2)
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
        heard = await receive_turn(session)
    assert live.context_updates == [{"systemInstruction": {"parts": [{"text": "Speak slowly."}], "role": "user"}}]
    assert heard.output_text == "Okay." and live.turns_done == 1
    assert live.client_contents[0]["turns"][0]["parts"] == [{"text": "hi"}]


async def test_audio_at_the_wrong_rate_closes_the_connection_with_a_reason(live: FakeLiveServer) -> None:
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await session.send_realtime_input(audio=types.Blob(data=b"\0\0" * 441, mime_type="audio/pcm;rate=44100"))
        with pytest.raises(errors.APIError, match=r"audio/pcm;rate=16000") as closed:
            await receive_turn(session)
    assert closed.value.code == 1007
    assert live.audio_in_bytes == 0 and "audio/pcm;rate=44100" in live.rejections[0]


async def test_a_dropped_connection_surfaces_as_an_error(live: FakeLiveServer) -> None:
    async with client_for(live).aio.live.connect(model=MODEL, config=config()) as session:
        await live.drop_connection()
        with pytest.raises(errors.APIError) as dropped:
            await receive_turn(session)
    assert dropped.value.code == 1011


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"client_content": {"turnComplete": True}}], "first message must be a setup"),
        ([{"setup": {"model": f"models/{MODEL}", "bogusField": 1}}], "'bogusField'"),
        ([{"setup": {"model": f"models/{MODEL}"}}, {"realtimeInputs": {}}], "'realtimeInputs'"),
        ([{"setup": {"model": f"models/{MODEL}"}}, {"tool_response": {"functionResponses": [{"id": "x"}]}}], "'x'"),
    ],
)
async def test_messages_the_real_server_refuses_close_with_1007(
    live: FakeLiveServer, messages: list[dict[str, object]], reason: str
) -> None:
    url = (
        live.base_url.replace("https", "wss")
        + "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    async with ws_connect(url, ssl=live.client_ssl, additional_headers={"x-goog-api-key": "k"}) as ws:
        for message in messages:
            await ws.send(json.dumps(message))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007 and reason in closed.value.rcvd.reason


async def test_a_connection_without_an_api_key_is_refused(live: FakeLiveServer) -> None:
    url = (
        live.base_url.replace("https", "wss")
        + "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, ssl=live.client_ssl):
            pass
    assert refused.value.response.status_code == 401 and live.connections == 0


async def test_the_environment_route_reaches_the_fake_and_tls_is_verified(
    live: FakeLiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", live.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(live.cert_path))
    async with genai.Client(api_key="fake-key").aio.live.connect(model=MODEL) as session:
        assert session.setup_complete is not None
    monkeypatch.delenv("SSL_CERT_FILE")  # the SDK's default trust store (certifi) must not accept the fake
    with pytest.raises(ssl.SSLCertVerificationError):
        async with genai.Client(api_key="fake-key").aio.live.connect(model=MODEL):
            pass
    assert live.connections == 1
