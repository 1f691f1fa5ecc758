"""Several workers, one person, one live session (issue 11, part 4).

Two real ``sam2voice serve`` processes on one Redis, one of them with ``--workers 2``: a sign-in
made on one works on the other, a second window on the other process takes over the first
(4409), and signing out on one closes the socket held by the other (4401). In-process tests
cover what the periodic re-check catches: a session that expired, and a takeover whose pub/sub
message was lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
import websockets
from google import genai

from app.accounts import AccountStore
from app.companion import Companion
from app.eval.bench.common import free_port
from app.eval.fakes.live import FakeLiveServer
from app.settings import Settings
from app.web.presence import VoicePresence
from app.web.server import create_app
from tests.companion_fixtures import Rig
from tests.test_hardening import FLOODER
from tests.test_voice_server import serving

PASSWORD = "correct horse battery"
COOKIE = "sam2voice_session"


def start_server(port: int, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from app.cli import app; app()", "serve", "--port", str(port),
                             *extra], env=env, cwd=log.parent, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"http://{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base} did not come up:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[str, str]]:
    """``(a, b)``: ``serve --workers 2`` and a plain ``serve``, both on the test Redis in one namespace."""
    work = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "REDIS_URL": redis_url, "SAM2VOICE_DATA_DIR": str(work),
           "SAM2VOICE_MEMORY__NAMESPACE": f"w{uuid.uuid4().hex[:10]}", "SAM2VOICE_CHAT_PROVIDER": "template",
           "SAM2VOICE_LOG_LEVEL": "WARNING"}
    env.pop("GOOGLE_API_KEY", None)
    ports = free_port(), free_port()
    logs = work / "a.log", work / "b.log"
    processes = [start_server(ports[0], env, logs[0], "--workers", "2"), start_server(ports[1], env, logs[1])]
    try:
        bases = tuple(f"127.0.0.1:{port}" for port in ports)
        for base, process, log in zip(bases, processes, logs, strict=True):
            wait_healthy(base, process, log)
        yield bases  # type: ignore[misc]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def sign_up(base: str, name: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        answer = await http.post("/api/signup", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return str(answer.cookies[COOKIE])


async def ready_socket(base: str, cookie: str) -> Any:
    ws = await websockets.connect(f"ws://{base}/ws", open_timeout=30,
                                  additional_headers={"Cookie": f"{COOKIE}={cookie}", "Origin": f"http://{base}"})
    await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
    async with asyncio.timeout(30):
        while json.loads(await ws.recv())["type"] != "ready":
            pass
    return ws


async def closed_with(ws: Any, timeout_s: float = 15) -> tuple[int | None, list[str]]:
    """Read until the server closes the socket: (close code, error codes seen)."""
    codes: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await ws.recv()
                if isinstance(frame, str) and (data := json.loads(frame)).get("type") == "error":
                    codes.append(data["code"])
    except websockets.ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), codes
    raise AssertionError("unreachable")


@pytest.mark.slow
async def test_sign_in_works_on_any_process_and_the_newest_window_wins_across_them(
        two_servers: tuple[str, str]) -> None:
    a, b = two_servers
    cookie = await sign_up(a, "kai")
    async with httpx.AsyncClient(base_url=f"http://{b}") as http:
        assert (await http.get("/api/me", cookies={COOKIE: cookie})).json()["user"] == "kai"
        signed_in = await http.post("/api/signin", json={"name": "kai", "password": PASSWORD})
    assert signed_in.status_code == 200

    # Back and forth, and within --workers 2 (whichever worker each socket lands on).
    for first, second in ((a, b), (b, a), (a, a), (a, a), (b, b)):
        old = await ready_socket(first, cookie)
        new = await ready_socket(second, cookie)
        assert await closed_with(old) == (4409, ["replaced"]), (first, second)
        await new.close()


@pytest.mark.slow
async def test_signing_out_on_one_process_closes_the_socket_on_the_other(two_servers: tuple[str, str]) -> None:
    a, b = two_servers
    cookie = await sign_up(b, "noor")
    other = await sign_up(a, "lee")  # someone else's socket must stay open
    ws = await ready_socket(b, cookie)
    bystander = await ready_socket(b, other)
    async with httpx.AsyncClient(base_url=f"http://{a}", cookies={COOKIE: cookie}) as http:
        assert (await http.post("/api/signout")).json() == {"ok": True, "revoked": 1}
    assert await closed_with(ws) == (4401, ["signed_out"])
    await bystander.send(json.dumps({"type": "text", "text": "still here?"}))
    async with asyncio.timeout(30):
        while (frame := json.loads(await bystander.recv())).get("role") != "assistant" or not frame.get("final"):
            pass
    await bystander.close()

    again = await ready_socket(a, await sign_up(a, "noor2"))
    async with httpx.AsyncClient(base_url=f"http://{b}") as http:
        for _ in range(2):
            await http.post("/api/signin", json={"name": "noor2", "password": PASSWORD})
        cookie2 = (await http.post("/api/signin", json={"name": "noor2", "password": PASSWORD})).cookies[COOKIE]
        everywhere = await http.post("/api/signout-everywhere", cookies={COOKIE: cookie2})
    assert everywhere.json()["revoked"] >= 2
    assert await closed_with(again) == (4401, ["signed_out"])


# ---- what the periodic re-check catches (one process, fast) --------------------------------


@pytest.fixture
async def quick_recheck(rig: Rig, fake: FakeLiveServer) -> AsyncIterator[tuple[str, Any]]:
    client = genai.Client(api_key="fake-key", http_options=fake.http_options())
    app = create_app(Settings(voice_recheck_s=0.3), companion=Companion(deps=rig.deps, graph=rig.graph),
                     client=client, mode="live")
    async with serving(app) as address:
        yield address, app


async def test_a_socket_closes_when_its_session_expires(quick_recheck: tuple[str, Any]) -> None:
    base, app = quick_recheck
    cookie = await sign_up(base, "ivo")
    ws = await ready_socket(base, cookie)
    tag, sid = cookie.split(".")
    await app.state.accounts.client.delete(app.state.accounts._session(tag, sid))  # the 12 h TTL ran out
    assert await closed_with(ws, timeout_s=5) == (4401, ["signed_out"])


async def test_a_takeover_whose_message_was_lost_still_closes_the_older_window(
        quick_recheck: tuple[str, Any]) -> None:
    base, app = quick_recheck
    cookie = await sign_up(base, "mo")
    ws = await ready_socket(base, cookie)
    await app.state.accounts.claim_voice("mo")  # another process claimed it; its announcement never came
    assert await closed_with(ws, timeout_s=5) == (4409, ["replaced"])


async def test_forgetting_someone_reaches_every_process(rig: Rig) -> None:
    """Each process drops the person's writes still queued in its own outbox when told."""
    client = rig.deps.memory.client
    namespace = rig.deps.memory.registry.backend.settings.namespace
    accounts = AccountStore(client, namespace)
    dropped: list[str] = []
    here, there = (VoicePresence(accounts, client, namespace), VoicePresence(accounts, client, namespace,
                                                                             on_forget=dropped.append))
    await here.start()
    await there.start()
    try:
        await here.forgotten("ada")
        async with asyncio.timeout(5):
            while not dropped:
                await asyncio.sleep(0.02)
        assert dropped == ["ada"]
    finally:
        await here.stop()
        await there.stop()


class StandInSocket:
    """Just what VoicePresence touches of a VoiceSocket."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.replaced = False  # the stand-in's own record that presence called replace()

    async def replace(self) -> None:
        self.replaced = True


async def test_with_redis_down_takeover_still_works_inside_the_process() -> None:
    """A degraded server: no generation can be claimed and no message sent, and nothing crashes."""
    dead = redis_asyncio.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    presence = VoicePresence(AccountStore(dead, "tdead"), dead, "tdead", recheck_s=0.1)
    await presence.start(timeout_s=0.5)  # gives up waiting for the channel; keeps retrying in the background
    try:
        first, second = StandInSocket("rae"), StandInSocket("rae")
        await presence.enter(first, "c1")  # type: ignore[arg-type]
        await presence.enter(second, "c2")  # type: ignore[arg-type]
        assert first.replaced and not second.replaced
        watching = asyncio.create_task(presence.watch(second, "c2"))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        assert not watching.done() and not second.replaced  # Redis away: nothing learnt, nothing closed
        watching.cancel()
    finally:
        await presence.stop()
        await dead.aclose()


@pytest.mark.slow
async def test_healthz_stays_fast_while_one_client_floods_a_real_server(two_servers: tuple[str, str]) -> None:
    """Against a real ``serve`` process (not sharing the test's event loop): one signed-in client
    floods audio frames and reconnects each time it is closed; /healthz p95 stays ≤ 50 ms."""
    _, b = two_servers
    cookie = await sign_up(b, "flo")
    flooder = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOODER, f"ws://{b}/ws",
                                                   f"{COOKIE}={cookie}", "4", "3200", stdout=asyncio.subprocess.PIPE)
    assert flooder.stdout is not None
    assert (await asyncio.wait_for(flooder.stdout.readline(), 30)).strip() == b"flooding"
    latencies = []
    async with httpx.AsyncClient(base_url=f"http://{b}") as http:
        await asyncio.sleep(0.3)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            started = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
    counts = json.loads(await asyncio.wait_for(flooder.stdout.readline(), 30))
    await flooder.wait()
    p95 = sorted(latencies)[int(len(latencies) * 0.95) - 1]
    print(f"healthz under a reconnecting flood: p95 {p95:.1f} ms over {len(latencies)}; flooder {counts}")
    assert counts["connections"] >= 1 and counts["close_codes"][:1] == [1008]
    assert p95 <= 50, sorted(latencies)[-10:]
