"""``sam2voice serve``'s HTTP and websocket side (docs/voice-protocol.md): session cookies, one
session per person, bad frames, and a browser that leaves mid-turn. The server runs on
uvicorn in the test's event loop, over the real graph and Redis, with Gemini Live played
by the fake Live server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from google import genai

from app.companion import Companion
from app.eval.bench.common import free_port
from app.eval.fakes.live import FakeLiveServer, LiveTurn
from app.settings import Settings
from app.web.http_protocol import uvicorn_options
from app.web.server import create_app
from memories.interventions import InterventionMemory
from tests.companion_fixtures import Rig
from tests.conftest import element
from tests.voice_fixtures import tone

SPEECH = tone(400)


@asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` as ``sam2voice serve`` does (``uvicorn_options``; ``options`` override them)."""
    port = free_port()
    config = uvicorn_options(Settings()) | {"log_level": "warning"} | options
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def base(rig: Rig, fake: FakeLiveServer) -> AsyncIterator[str]:
    client = genai.Client(api_key="fake-key", http_options=fake.http_options())
    app = create_app(Settings(), companion=Companion(deps=rig.deps, graph=rig.graph), client=client, mode="live")
    async with serving(app) as address:
        yield address


PASSWORD = "correct horse battery"


async def sign_in(base: str, name: str) -> str:
    """Sign up ``name`` (with a password); returns the session cookie's value."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"http://{base}/api/signup", json={"name": name, "password": PASSWORD})
    answer.raise_for_status()
    return str(answer.cookies["sam2voice_session"])


def voice_socket(base: str, session: str | None) -> Any:
    """Open /ws with the session cookie (None: without one)."""
    headers = {"Cookie": f"sam2voice_session={session}"} if session is not None else {}
    return websockets.connect(f"ws://{base}/ws", additional_headers=headers)


async def next_json(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next JSON frame of ``kind`` (binary audio and other frames are skipped)."""
    async def find() -> dict[str, Any]:
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and (data := json.loads(frame))["type"] == kind:
                return data
    return await asyncio.wait_for(find(), timeout)


async def test_sign_up_sets_a_session_cookie_and_refuses_bad_names(base: str) -> None:
    async with httpx.AsyncClient() as http:
        good = await http.post(f"http://{base}/api/signup", json={"name": "ana", "password": PASSWORD})
        empty = await http.post(f"http://{base}/api/signup", json={"name": "", "password": PASSWORD})
        tabbed = await http.post(f"http://{base}/api/signup", json={"name": "a\tb", "password": PASSWORD})
        health = await http.get(f"http://{base}/healthz")
        page = await http.get(f"http://{base}/")
    assert good.status_code == 201 and good.json()["user"] == "ana" and good.json()["mode"] == "live"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # http://127.0.0.1
    assert empty.status_code == 422 and "name" in empty.text
    assert tabbed.status_code == 422 and "printable" in tabbed.text
    assert health.json() == {"ok": True, "mode": "live"}
    assert page.status_code == 200 and "<html" in page.text.lower()


async def test_a_forged_or_missing_session_is_refused(base: str) -> None:
    session = await sign_in(base, "ana")
    forged = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
    for bad in (None, "", forged, "ana.x", "nonsense"):
        async with voice_socket(base, bad) as ws:
            error = await next_json(ws, "error")
            assert error["code"] == "bad_session"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_bad_frames_get_clear_errors_and_the_session_goes_on(base: str, fake: FakeLiveServer,
                                                                   rig: Rig) -> None:
    fake.script(LiveTurn(transcript="I can't start my essay", reply="Let's begin small.", audio_ms=300))
    session = await sign_in(base, "ana")
    async with voice_socket(base, session) as ws:
        await ws.send(SPEECH[:3200])
        assert (await next_json(ws, "error"))["code"] == "hello_required"
        await ws.send(json.dumps({"type": "hello", "sample_rate": 44100}))
        error = await next_json(ws, "error")
        assert error["code"] == "bad_sample_rate" and "16000" in error["message"]
        await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
        ready = await next_json(ws, "ready")
        assert ready["user"] == "ana" and ready["output_rate"] == 24000
        await ws.send(b"\x00\x01\x02")
        assert (await next_json(ws, "error"))["code"] == "bad_frame"
        await ws.send(bytes(64_000))
        assert (await next_json(ws, "error"))["code"] == "frame_too_large"
        await ws.send("{not json")
        assert (await next_json(ws, "error"))["code"] == "bad_message"
        await ws.send(json.dumps({"type": "dance"}))
        assert (await next_json(ws, "error"))["code"] == "bad_message"
        await ws.send(json.dumps({"type": "text", "text": ""}))
        assert (await next_json(ws, "error"))["code"] == "bad_message"

        # After all that, a spoken turn works: transcript, audio, memories used.
        for offset in range(0, len(SPEECH), 3200):
            await ws.send(SPEECH[offset:offset + 3200])
        await ws.send(json.dumps({"type": "end_of_speech"}))
        got_audio = False
        transcript = None
        async def read_turn() -> None:
            nonlocal got_audio, transcript
            while not (got_audio and transcript):
                frame = await ws.recv()
                if isinstance(frame, bytes):
                    got_audio = True
                elif (data := json.loads(frame))["type"] == "transcript" and data["role"] == "user" and data["final"]:
                    transcript = data["text"]
        await asyncio.wait_for(read_turn(), 10)
        assert transcript == "I can't start my essay"
        memory = await next_json(ws, "memory")
        assert memory["turn"] == 0
        await ws.send(json.dumps({"type": "end"}))
        ended = await next_json(ws, "ended")
        assert "reflection" in ended
    # The session belonged to the cookie's user.
    assert await rig.session("ana").directory.threads("ana")


async def test_a_second_window_takes_over_the_session(base: str) -> None:
    session = await sign_in(base, "ben")
    async with voice_socket(base, session) as first:
        await first.send(json.dumps({"type": "hello", "sample_rate": 16000}))
        await next_json(first, "ready")
        async with voice_socket(base, session) as second:
            assert (await next_json(first, "error"))["code"] == "replaced"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await first.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
            await second.send(json.dumps({"type": "hello", "sample_rate": 16000}))
            assert (await next_json(second, "ready"))["user"] == "ben"


async def test_leaving_mid_turn_keeps_what_was_said(base: str, fake: FakeLiveServer, rig: Rig) -> None:
    fake.script(LiveTurn(transcript="the dishes are piling up and I'm avoiding them",
                         tool_calls=[{"name": "create_microsteps", "args": {"task": "the dishes"}}],
                         reply="Let's do one plate.", audio_ms=2000))
    session = await sign_in(base, "cai")
    async with voice_socket(base, session) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
        await next_json(ws, "ready")
        for offset in range(0, len(SPEECH), 3200):
            await ws.send(SPEECH[offset:offset + 3200])
        await ws.send(json.dumps({"type": "end_of_speech"}))
        await next_json(ws, "tool")  # mid-turn: the reply's audio is still coming
    # The browser is gone; what the person said and the tool's intervention are in memory.
    interventions = element(rig.stack, InterventionMemory)
    for _ in range(100):
        if await interventions.pending("cai", limit=1):
            break
        await asyncio.sleep(0.05)
    (pending,) = await interventions.pending("cai", limit=1)
    assert pending.tool_name == "create_microsteps" and "dishes" in pending.user_context
