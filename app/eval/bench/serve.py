"""``sam2voice bench serve``: the real voice server (``sam2voice serve``) in a subprocess of its
own, measured from this process over real sockets (issue 11).

The server runs offline (no Google key: offline speech, models loaded before ``/healthz``
answers) with the template chat model, on a free port, in a throwaway data dir with its own
embedded Redis on a free port; both are stopped afterwards, even on error. Four phases:

1. **Accounts**: ``sockets + 2`` password sign-ups (``POST /api/signup``, argon2id), then
   ``sign_ins`` password sign-ins (``POST /api/signin``) into distinct accounts (each once and
   with the right password, so the rate limiter never locks anyone out), ``http_concurrency``
   requests at a time. ``sign_up_*_ms``, ``sign_in_*_ms``.
2. **Idle baseline**: ``GET /healthz`` one at a time every 10 ms (``healthz_idle_*_ms``).
3. **Flood**: one signed-in client in a third process (``python -m app.eval.bench.serve --flood``)
   says hello and sends binary PCM16 frames (100 ms of silence each) as fast as it can for
   ``flood_s`` seconds while this process times ``/healthz`` (``healthz_flood_*_ms``; target
   p95 <= 50 ms). The server accepts at most ``frame_burst + frames_per_s * flood_s`` frames
   (token bucket, ``app.web.hardening.VoiceLimits``) and drops the rest, saying ``rate_limited``
   at most once a second: ``flood_frames_accepted_max`` is that bound (it cannot be counted
   from outside).
4. **Typed turns** (after a warm-up person's 2 turns, as the server loads models on its first):
   ``sockets`` websockets at once, each its own account (the sign-up cookie), ``hello`` →
   ``ready``, then ``turns`` typed turns at a human pace (one every ``pace_s`` seconds, +/-
   ``jitter`` of it; the first at a random point of the first interval): ``planned_turns_per_s``
   is ``sockets / pace_s``. A turn is timed from sending its ``text`` frame to the companion's
   final reply transcript (``transcript``, ``role`` assistant, ``final`` true, with the turn
   number the server gave the echoed user transcript). Target ``turn_p95_ms`` <= 500 with no
   errors. A turn with no reply within ``turn_timeout_s`` is a ``timeout`` (an error) and the
   socket goes on; its reply, if it comes later (within ``drain_s`` after the last turn), is a
   ``late_reply`` (``turn_incl_late_*_ms`` counts both). ``busy`` answers, other ``error``
   frames and sockets closed during the run (``socket_closes``: by whom, which code) are
   counted; ``/healthz`` is timed throughout (``healthz_turns_*_ms``).

``cpu_s_*`` is the CPU time the server, its Redis and this process used in a phase (Linux
``/proc``); ``server_cpu_ms_per_turn`` divides the turn phase's by the replies. Run it on an
otherwise idle machine: the client, the flooder and the server share its cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import websockets
from rich.console import Console

from app.embedded_redis import EmbeddedRedis
from app.eval.bench.common import free_port, machine, percentiles
from app.web.hardening import VoiceLimits

ROOT = Path(__file__).resolve().parents[3]
COOKIE = "sam2voice_session"
PASSWORD = "correct horse battery staple"
HEALTHZ_P95_TARGET_MS = 50.0
TURN_P95_TARGET_MS = 500.0
FLOOD_FRAME_BYTES = 3200  # 100 ms of 16 kHz PCM16, as the page sends
# What people type; ``{k}`` makes each turn's text unique (the echoed transcript maps back to it).
SCRIPT = [
    "hi, i need some help getting going ({k})",
    "i cant start my essay, it feels huge ({k})",
    "everything is too loud today ({k})",
    "i keep checking my phone instead of the dishes ({k})",
    "that didn't help, still stuck ({k})",
    "ok that helped a bit ({k})",
    "random question, do you like music ({k})",
    "thanks, it feels lighter now ({k})",
]
# Environment the server must not inherit: a key would make it call Gemini, a URL another Redis.
DROP_ENV = ("GOOGLE_API_KEY", "SAM2VOICE_GOOGLE_API_KEY", "REDIS_URL", "SAM2VOICE_REDIS_URL", "SAM2VOICE_CHAT_PROVIDER",
            "SAM2VOICE_SERVE_HOST", "SAM2VOICE_SERVE_PORT", "SAM2VOICE_DATA_DIR", "SAM2VOICE_EMBEDDED_PORT")


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit of open files towards ``wanted``; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (Linux ``/proc``; None elsewhere)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """``sam2voice serve`` in a subprocess with a throwaway data dir and embedded Redis."""

    def __init__(self, tmp: Path, say: Any) -> None:
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.log_path = tmp / "server.log"
        self.say = say
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"127.0.0.1:{self.port}"
        self.origin = f"http://{self.base}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        return env | {"SAM2VOICE_DATA_DIR": str(self.data_dir),
                      "SAM2VOICE_CHAT_PROVIDER": "template", "SAM2VOICE_SERVE_HOST": "127.0.0.1",
                      "SAM2VOICE_SERVE_PORT": str(self.port), "SAM2VOICE_LOG_LEVEL": "WARNING",
                      "PYTHONUNBUFFERED": "1"}

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-c", "from app.cli import main; main()", "serve"]

    async def start(self, timeout_s: float) -> None:
        """Start the server and wait until ``/healthz`` answers (speech models load first)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}) before it answered:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://{self.base}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s:g} s:\n{self.tail()}")

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds used so far by the server and by its embedded Redis."""
        redis_pid = None
        with contextlib.suppress(OSError, ValueError):
            redis_pid = int((self.data_dir / "redis" / "valkey.pid").read_text().strip())
        return {"server": cpu_seconds(self.proc.pid if self.proc else None), "redis": cpu_seconds(redis_pid),
                "bench": cpu_seconds(os.getpid())}

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGINT: uvicorn's graceful shutdown; then SIGKILL) and its embedded Redis."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.say("[yellow]the server did not stop within 30 s; killing it[/]")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        EmbeddedRedis(self.data_dir / "redis").stop()  # as app.runtime.embedded_server places it


def _cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    """CPU seconds each process used between two :meth:`Server.cpu` readings."""
    return {k: None if before.get(k) is None or after.get(k) is None else round(after[k] - before[k], 2)  # type: ignore[operator]
            for k in after}


async def _timed_requests(http: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]], concurrency: int,
                          expect: int) -> tuple[list[float], list[httpx.Response], Counter[str]]:
    """POST each ``(path, json)``, ``concurrency`` at a time; latencies of the answers with status ``expect``."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    answers: list[httpx.Response] = []
    failures: Counter[str] = Counter()

    async def one(path: str, body: dict[str, Any]) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                answer = await http.post(path, json=body)
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
                return
            ms = (time.perf_counter() - start) * 1000
            if answer.status_code == expect:
                latencies.append(ms)
                answers.append(answer)
            else:
                failures[f"http_{answer.status_code}"] += 1

    await asyncio.gather(*(one(path, body) for path, body in requests))
    return latencies, answers, failures


async def _healthz_until(http: httpx.AsyncClient, stop: asyncio.Event,
                         pause_s: float = 0.01) -> tuple[list[float], int]:
    """Time ``GET /healthz`` one at a time until ``stop`` is set; (latencies in ms, failures)."""
    latencies: list[float] = []
    failures = 0
    while not stop.is_set():
        start = time.perf_counter()
        try:
            ok = (await http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append((time.perf_counter() - start) * 1000)
        else:
            failures += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause_s)
    return latencies, failures


async def _healthz_for(http: httpx.AsyncClient, seconds: float) -> tuple[list[float], int]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await _healthz_until(http, stop)


class Socket:
    """One signed-in person's websocket: connects, says hello, sends paced typed turns, times replies."""

    def __init__(self, index: int, cookie: str, server: Server, tally: Tally) -> None:
        self.index, self.cookie, self.server, self.tally = index, cookie, server, tally
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.pending_text: str | None = None
        self.sent_at: dict[str, float] = {}  # text -> when it was sent, until its reply (or busy) arrives
        self.turn_of: dict[int, str] = {}  # the server's turn number -> the text it echoed
        self.reply: asyncio.Future[str] | None = None
        self.closed = False

    async def open(self, timeout_s: float) -> None:
        self.ws = await websockets.connect(
            f"ws://{self.server.base}/ws", additional_headers={"Cookie": f"{COOKIE}={self.cookie}",
                                                               "Origin": self.server.origin},
            max_size=None, open_timeout=timeout_s, close_timeout=5, ping_interval=None)  # browsers send no pings
        await self.ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))

        async def ready() -> None:
            while True:
                frame = await self.ws.recv()
                if isinstance(frame, str):
                    event = json.loads(frame)
                    if event.get("type") == "ready":
                        return
                    if event.get("type") == "error":
                        raise RuntimeError(f"error before ready: {event.get('code')}")

        await asyncio.wait_for(ready(), timeout_s)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.tally.audio_bytes += len(frame)
                    continue
                event = json.loads(frame)
                kind = event.get("type")
                if kind == "transcript" and event.get("final"):
                    text = event.get("text")
                    if event.get("role") == "user" and text in self.sent_at:
                        self.turn_of[event.get("turn")] = text
                    elif event.get("role") == "assistant" and event.get("turn") in self.turn_of:
                        text = self.turn_of.pop(event.get("turn"))
                        sent = self.sent_at.pop(text)
                        if text == self.pending_text:
                            self._resolve("reply")
                        else:  # after its turn timed out
                            self.tally.late_ms.append((time.perf_counter() - sent) * 1000)
                            self.tally.last_reply = time.perf_counter()
                elif kind == "error":
                    code = str(event.get("code"))
                    self.tally.error_frames[code] += 1
                    if code == "busy" and self.pending_text is not None:
                        self.sent_at.pop(self.pending_text, None)
                        self._resolve("busy")
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            if not self.tally.closing:  # closed during the run: by whom, and why
                rcvd, sent = self.ws.close_rcvd, self.ws.close_sent
                if rcvd is not None and (sent is None or self.ws.close_rcvd_then_sent):
                    how = f"by the server: {rcvd.code} {rcvd.reason}".strip()
                elif sent is not None:
                    how = f"by this client: {sent.code} {sent.reason}".strip()
                else:
                    how = "connection lost"
                self.tally.closes[how] += 1
            self._resolve("closed")

    def _resolve(self, outcome: str) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(outcome)

    async def talk(self, turns: int, pace_s: float, jitter: float, timeout_s: float, rng: random.Random) -> None:
        """Send ``turns`` typed turns, one every ``pace_s`` (+/- ``jitter``), each waiting for its reply."""
        loop = asyncio.get_running_loop()
        due = loop.time() + rng.uniform(0, pace_s)
        for turn in range(turns):
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += pace_s * rng.uniform(1 - jitter, 1 + jitter)
            if self.closed:
                self.tally.outcomes["not_sent_closed"] += 1
                continue
            text = SCRIPT[(self.index + turn) % len(SCRIPT)].format(k=f"s{self.index}t{turn}")
            self.pending_text = text
            self.reply = loop.create_future()
            start = self.sent_at[text] = time.perf_counter()
            self.tally.first_sent = self.tally.first_sent or start
            try:
                await self.ws.send(json.dumps({"type": "text", "text": text}))
                outcome = await asyncio.wait_for(asyncio.shield(self.reply), timeout_s)
            except websockets.ConnectionClosed:
                outcome = "closed"
            except TimeoutError:
                outcome = "timeout"
            ms = (time.perf_counter() - start) * 1000
            self.tally.outcomes[outcome] += 1
            if outcome == "reply":
                self.tally.turn_ms.append(ms)
                self.tally.last_reply = time.perf_counter()
            self.pending_text = None
            self.tally.progress()

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 10)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 10)


class Tally:
    """What the sockets saw."""

    def __init__(self, total: int, say: Any) -> None:
        self.total, self.say = total, say
        self.turn_ms: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.error_frames: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.late_ms: list[float] = []  # replies that came after their turn timed out
        self.closing = False  # set when the bench closes the sockets itself
        self.audio_bytes = 0
        self.first_sent: float | None = None
        self.last_reply: float | None = None
        self._step = max(1, total // 10)

    def progress(self) -> None:
        done = sum(self.outcomes.values())
        if done % self._step == 0 or done == self.total:
            ms = sorted(self.turn_ms)
            p95 = f"{ms[int(0.95 * (len(ms) - 1))]:.0f} ms" if ms else "-"
            self.say(f"  {done}/{self.total} turns  p95 so far {p95}  "
                     f"busy {self.outcomes['busy']}  other {done - self.outcomes['reply'] - self.outcomes['busy']}")


async def _flood(server: Server, cookie: str, seconds: float, http: httpx.AsyncClient, say: Any) -> dict[str, Any]:
    """One client floods audio frames from a third process while this one times /healthz."""
    flooder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.eval.bench.serve", "--flood", f"ws://{server.base}/ws", f"{COOKIE}={cookie}",
        server.origin, str(seconds), str(FLOOD_FRAME_BYTES), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert flooder.stdout is not None
    try:
        line = await asyncio.wait_for(flooder.stdout.readline(), 60)
        if line.strip() != b"flooding":
            raise RuntimeError(f"the flooder did not start: {line!r}")
        say(f"flood: one client sends {FLOOD_FRAME_BYTES}-byte frames as fast as it can for {seconds:g} s; "
            "timing /healthz ...")
        await asyncio.sleep(0.3)  # the flood is under way
        latencies, failures = await _healthz_for(http, max(0.5, seconds - 0.5))
        out, err = await asyncio.wait_for(flooder.communicate(), 60)
    finally:
        if flooder.returncode is None:
            flooder.kill()
            await flooder.wait()
    if flooder.returncode != 0:
        raise RuntimeError(f"the flooder failed: {err.decode(errors='replace')[-1500:]}")
    counts = json.loads(out.decode().strip().splitlines()[-1])
    limits = VoiceLimits()
    return {"flood_s": seconds, "flood_frame_bytes": FLOOD_FRAME_BYTES, "flood_frames_sent": counts["sent"],
            "flood_frames_per_s": round(counts["sent"] / counts["seconds"], 1),
            "flood_mb_per_s": round(counts["sent"] * FLOOD_FRAME_BYTES / counts["seconds"] / 1e6, 2),
            "flood_frames_accepted_max": min(counts["sent"], int(limits.frame_burst
                                                                 + limits.frames_per_s * counts["seconds"])),
            "flood_rate_limited_errors": counts["rate_limited"], "flood_socket_closed_early": counts["closed_early"],
            "flood_connections": counts["connections"], "flood_reconnects_refused": counts["refused"],
            "flood_close_codes": sorted(set(counts["close_codes"]), key=str),
            **percentiles("healthz_flood", latencies), "healthz_flood_requests": len(latencies),
            "healthz_flood_failures": failures}


async def run_serve_bench(*, sockets: int = 200, turns: int = 5, pace_s: float = 10.0, jitter: float = 0.3,
                          sign_ins: int = 50, http_concurrency: int = 1, flood_s: float = 5.0,
                          idle_s: float = 2.0, connect_concurrency: int = 20, turn_timeout_s: float = 30.0,
                          start_timeout_s: float = 300.0, drain_s: float = 60.0, seed: int = 11,
                          console: Console | None = None) -> dict[str, Any]:
    """Run the serve benchmark (see the module docstring) and return its figures."""
    say = console.print if console is not None else (lambda *_: None)
    rng = random.Random(seed)
    load_before = round(os.getloadavg()[0], 2)
    nofile = raise_open_file_limit(max(4096, 4 * sockets + 256))
    accounts = max(sockets, sign_ins) + 2  # + the flooder and the warm-up person
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="sam2voice-bench-serve-"))
    server = Server(tmp, say)
    result: dict[str, Any] = {}
    try:
        say(f"starting the server on {server.base} (offline voice, template chat model, its own embedded Redis on a "
            "private unix socket) ...")
        t0 = time.perf_counter()
        await server.start(start_timeout_s)
        result["server_start_s"] = round(time.perf_counter() - t0, 1)
        redis_socket = EmbeddedRedis(server.data_dir / "redis").socket_path
        result |= {"server_port": server.port, "redis_socket": str(redis_socket)}
        limits = httpx.Limits(max_connections=max(16, http_concurrency * 2))
        async with httpx.AsyncClient(base_url=f"http://{server.base}", headers={"Origin": server.origin},
                                     timeout=60.0, limits=limits) as http:
            # 1. accounts
            cpu0 = server.cpu()
            say(f"signing up {accounts} accounts, {http_concurrency} at a time ...")
            names = [f"bench{i:04d}" for i in range(accounts)]
            up_ms, up_answers, up_failed = await _timed_requests(
                http, [("/api/signup", {"name": n, "password": PASSWORD}) for n in names], http_concurrency, 201)
            cookies = {a.json()["user"]: a.cookies[COOKIE] for a in up_answers}
            http.cookies.clear()
            say(f"signing in {sign_ins} of them (each once, right password) ...")
            in_ms, _, in_failed = await _timed_requests(
                http, [("/api/signin", {"name": n, "password": PASSWORD}) for n in names[2:sign_ins + 2]],
                http_concurrency, 200)
            http.cookies.clear()
            result["cpu_s_accounts"] = _cpu_used(cpu0, server.cpu())
            result |= {"accounts": accounts, "sign_ups": len(up_ms), "sign_up_failures": dict(up_failed),
                       **percentiles("sign_up", up_ms), "sign_ins": len(in_ms), "sign_in_failures": dict(in_failed),
                       **percentiles("sign_in", in_ms), "http_concurrency": http_concurrency}
            say(f"  sign-up p95 {result['sign_up_p95_ms']} ms, sign-in p95 {result['sign_in_p95_ms']} ms")
            if any(n not in cookies for n in names[:sockets + 2]):
                raise RuntimeError(f"sign-ups failed: {dict(up_failed)}")
            say("warm-up: one person, 2 typed turns (the server loads its models on the first turn) ...")
            warm_tally = Tally(2, lambda *_: None)
            warm = Socket(-1, cookies[names[1]], server, warm_tally)
            await warm.open(60.0)
            await warm.talk(2, 0.2, 0.0, 120.0, rng)
            await warm.close()
            result["warm_up_turn_ms"] = [round(ms, 1) for ms in warm_tally.turn_ms]

            # 2. idle baseline, 3. flood
            idle, idle_failed = await _healthz_for(http, idle_s)
            result |= {**percentiles("healthz_idle", idle), "healthz_idle_requests": len(idle),
                       "healthz_idle_failures": idle_failed}
            say(f"healthz idle: p95 {result['healthz_idle_p95_ms']} ms over {len(idle)} requests")
            if flood_s > 0:
                cpu0 = server.cpu()
                result |= await _flood(server, cookies[names[0]], flood_s, http, say)
                result["cpu_s_flood"] = _cpu_used(cpu0, server.cpu())
                say(f"  healthz under flood: p95 {result['healthz_flood_p95_ms']} ms over "
                    f"{result['healthz_flood_requests']} requests; {result['flood_frames_per_s']} frames/s sent, "
                    f"{result['flood_rate_limited_errors']} rate_limited")
                await asyncio.sleep(1.0)  # let the flooder's socket close and the server drain

            # 4. typed turns on many sockets
            tally = Tally(sockets * turns, say)
            people = [Socket(i, cookies[n], server, tally) for i, n in enumerate(names[2:sockets + 2])]
            say(f"opening {sockets} websockets ({connect_concurrency} at a time), hello -> ready ...")
            gate = asyncio.Semaphore(connect_concurrency)
            connect_failures: Counter[str] = Counter()

            async def open_one(person: Socket) -> bool:
                async with gate:
                    try:
                        await person.open(60.0)
                        return True
                    except Exception as exc:  # counted; the run goes on with the sockets that opened
                        connect_failures[type(exc).__name__] += 1
                        return False

            t0 = time.perf_counter()
            oks = await asyncio.gather(*(open_one(p) for p in people))
            opened = [p for p, ok in zip(people, oks, strict=True) if ok]
            connect_s = time.perf_counter() - t0
            planned = len(opened) / pace_s
            say(f"  {len(opened)} open in {connect_s:.1f} s; {turns} turns each, one every {pace_s:g} s "
                f"(+/- {jitter:.0%}): ~{planned:.1f} turns/s in all ...")
            stop = asyncio.Event()
            poller = asyncio.create_task(_healthz_until(http, stop, pause_s=0.1))
            cpu0 = server.cpu()
            t0 = time.perf_counter()
            try:
                await asyncio.gather(*(p.talk(turns, pace_s, jitter, turn_timeout_s, random.Random(rng.random()))
                                       for p in opened))
            finally:
                stop.set()
                busy_healthz, busy_healthz_failed = await poller
                turns_s = time.perf_counter() - t0
                drain_until = time.monotonic() + drain_s  # replies still owed: wait for them (counted late)
                while any(p.sent_at for p in opened if not p.closed) and time.monotonic() < drain_until:
                    await asyncio.sleep(0.2)
                cpu_turns = _cpu_used(cpu0, server.cpu())
                tally.closing = True
                closed_by_server = sum(p.closed for p in opened)
                await asyncio.gather(*(p.close() for p in opened))
            replied = tally.outcomes["reply"]
            span = ((tally.last_reply - tally.first_sent) if tally.first_sent and tally.last_reply else turns_s)
            other_errors = sum(n for code, n in tally.error_frames.items() if code != "busy")
            result |= {
                "sockets": sockets, "sockets_opened": len(opened), "connect_failures": dict(connect_failures),
                "connect_s": round(connect_s, 1), "turns_per_socket": turns, "pace_s": pace_s, "jitter": jitter,
                "planned_turns_per_s": round(planned, 2), "turns_sent": sum(tally.outcomes.values())
                - tally.outcomes["not_sent_closed"], "turns": replied,
                "replies": replied + len(tally.late_ms),
                "turns_per_s": round((replied + len(tally.late_ms)) / span, 2) if span > 0 else None,
                "turn_phase_s": round(turns_s, 1), "reply_span_s": round(span, 1),
                **percentiles("turn", tally.turn_ms), "busy": tally.outcomes["busy"],
                "timeouts": tally.outcomes["timeout"], "late_replies": len(tally.late_ms),
                "replies_never_came": sum(len(p.sent_at) for p in opened),
                **percentiles("late_reply", tally.late_ms),
                **percentiles("turn_incl_late", tally.turn_ms + tally.late_ms),
                "turns_lost_to_closed_sockets": tally.outcomes["closed"] + tally.outcomes["not_sent_closed"],
                "sockets_closed_by_server": closed_by_server,
                "socket_closes": dict(tally.closes),
                "error_frames": dict(tally.error_frames),
                "errors": other_errors + tally.outcomes["timeout"] + sum(connect_failures.values()),
                "reply_audio_mb": round(tally.audio_bytes / 1e6, 1),
                **percentiles("healthz_turns", busy_healthz), "healthz_turns_failures": busy_healthz_failed,
                "cpu_s_turns": cpu_turns,
                "server_cpu_ms_per_turn": round(1000 * cpu_turns["server"] / (replied + len(tally.late_ms)), 1)
                if replied + len(tally.late_ms) and cpu_turns.get("server") is not None else None}
            say(f"  {replied} turns answered in time, {len(tally.late_ms)} late; {result['turns_per_s']} replies/s; "
                f"p95 {result['turn_p95_ms']} ms, busy {result['busy']}, errors {result['errors']}, "
                f"closed {closed_by_server}")
    finally:
        say("stopping the server and its embedded Redis ...")
        server.stop()
        log_tail = server.tail(1500)
        shutil.rmtree(tmp, ignore_errors=True)
    result["server_log_tail"] = log_tail if any(w in log_tail for w in ("ERROR", "Traceback")) else ""
    flood_p95 = result.get("healthz_flood_p95_ms")
    result["targets"] = {
        "healthz_flood_p95_ms<=50": None if flood_p95 is None else flood_p95 <= HEALTHZ_P95_TARGET_MS,
        "turn_p95_ms<=500": (result["turn_p95_ms"] is not None and result["turn_p95_ms"] <= TURN_P95_TARGET_MS
                             and result["errors"] == 0),
    }
    result["target_met"] = all(v is not False for v in result["targets"].values())
    result |= {"wall_s": round(time.perf_counter() - started, 1), "open_file_limit": nofile,
               "server_command": "sam2voice serve (python -c 'from app.cli import main; main()' serve), "
                                 "SAM2VOICE_CHAT_PROVIDER=template, no Google key (offline voice)",
               "machine": machine() | {"load_avg_1m_before": load_before,
                                       "load_avg_1m_after": round(os.getloadavg()[0], 2)}}
    return result


FLOODER_USAGE = "usage: python -m app.eval.bench.serve --flood WS_URL COOKIE ORIGIN SECONDS FRAME_BYTES"


def _flooder(url: str, cookie: str, origin: str, seconds: float, frame_bytes: int) -> None:
    """The flooding client (a process of its own, so its sends do not share a loop with the timing).
    As an attacker would, it reconnects at once whenever the server closes it, and floods again."""
    import threading

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    counts: dict[str, Any] = {"sent": 0, "rate_limited": 0, "flooding": 0, "connections": 0, "refused": 0,
                              "close_codes": [], "closed_early": False, "seconds": seconds}
    frame = bytes(frame_bytes)  # silence
    print("flooding", flush=True)
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        try:
            ws = connect(url, max_size=None, open_timeout=5,
                         additional_headers={"Cookie": cookie, "Origin": origin}).__enter__()
        except (InvalidStatus, websockets.ConnectionClosed, OSError):
            counts["refused"] += 1  # refused while the server holds the flooder back
            continue
        counts["connections"] += 1
        try:
            ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
            while not (isinstance(got := ws.recv(30), str) and json.loads(got).get("type") == "ready"):
                pass

            def read(ws: Any = ws) -> None:
                with contextlib.suppress(Exception):
                    for got in ws:
                        if isinstance(got, str) and (code := json.loads(got).get("code")) in ("rate_limited",
                                                                                               "flooding"):
                            counts[code] += 1

            threading.Thread(target=read, daemon=True).start()
            while time.monotonic() < end:
                ws.send(frame)
                counts["sent"] += 1
        except websockets.ConnectionClosed as exc:
            counts["closed_early"] = True
            counts["close_codes"].append(exc.rcvd.code if exc.rcvd else None)
        finally:
            ws.close()
    counts["seconds"] = round(time.monotonic() - start, 3)
    time.sleep(0.5)  # the last answers
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":  # the flooder: python -m app.eval.bench.serve --flood ...
    if sys.argv[1:2] != ["--flood"] or len(sys.argv) != 7:
        raise SystemExit(FLOODER_USAGE)
    _flooder(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))
