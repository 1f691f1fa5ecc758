"""``sam2voice bench load``: many people talking to ONE companion at once, in one process.

``people`` sessions (each a distinct user id) run concurrently on one :class:`~app.companion.Companion`
(one memory stack, one Redis client and pool, one compiled graph), each sending ``turns`` messages
one after another, with the deterministic template chat model (offline, no model time).
Every message carries a marker word of its person (``zq<i>x``); after the run each person's
data is exported (as ``sam2voice memory export`` does, plus the checkpointed conversation of
each thread) and a person whose export holds another person's marker counts as a leak.

* ``turn_*_ms``: one whole ``CompanionSession.send`` (or, with ``--voice``, one spoken turn:
  ``audioStreamEnd`` to the turn's graph work finished) as the person waits for it, under load.
* ``wall_s``, ``turns_per_s``: the whole concurrent run (with ``--voice``, from the moment every
  person's Live session is connected; the connects themselves are not timed).
* ``errors``: exceptions that reached the caller (``errors_by_type`` keeps the first messages).
* ``degraded_turns``: turns answered without memory (``TurnResult.degraded``, a "memory offline"
  notice, or, for voice, the session's "degraded" status).
* ``memory_path_*`` (``--voice``): transcript to few-shot context sent (``send_context_update``),
  as ``sam2voice bench voice`` measures it, under load.

With ``--voice`` each person has a Gemini Live session against a fake Live server of their own
(the fake serves one connection and one script queue, so people cannot share one); all of
them run concurrently in the same process as the text path does.

Runs on a throwaway embedded server (or a scratch namespace of ``REDIS_URL``, deleted after).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from app.companion import Companion
from app.eval.bench.common import machine, percentiles, scratch_redis
from app.settings import Settings
from graphs.nodes.common import MEMORY_OFFLINE_NOTICE, message_text
from graphs.session import SessionDirectory, TurnResult
from memories.registry import MemoryRegistry
from tools.store import CoachingStore

log = logging.getLogger(__name__)

# What people say; ``{m}`` is the person's marker word. Turn 0 is always the greeting.
MESSAGES = [
    "hi, it's {m} here",
    "i cant start my essay on {m}, it feels huge",
    "can you break cleaning my room into steps? the {m} pile is everywhere",
    "did the first one, the {m} bit is done",
    "that didn't help, {m} still feels stuck",
    "what's next for {m}?",
    "random question, do you like {m} music",
    "everything is too loud today and {m} keeps buzzing",
    "i keep checking my phone instead of doing {m}",
    "thanks, {m} feels lighter now",
]
REPLY = "Okay, one tiny step."  # what the fake Live model says (voice)
SAMPLE_ERRORS = 3  # messages kept per exception type


def marker(index: int | str) -> str:
    """The word only person ``index`` ever says."""
    return f"zq{index}x"


def script(index: int, turns: int) -> list[str]:
    """Person ``index``'s ``turns`` messages: a greeting, then a repeatable draw from :data:`MESSAGES`."""
    rng = random.Random(index)
    picks = [0] + [rng.randrange(1, len(MESSAGES)) for _ in range(turns - 1)]
    return [MESSAGES[p].format(m=marker(index)) for p in picks[:turns]]


def find_leaks(exports: Mapping[str, Any], markers: Mapping[str, str]) -> dict[str, list[str]]:
    """For each person whose export holds another person's marker: whose markers it holds.

    ``exports`` and ``markers`` are keyed by user id; an export is any JSON-like value
    (searched as its ``repr``, keys and values alike)."""
    patterns = {user: re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE) for user, word in markers.items()}
    leaks: dict[str, list[str]] = {}
    for user, data in exports.items():
        text = repr(data)
        found = sorted(other for other, pattern in patterns.items() if other != user and pattern.search(text))
        if found:
            leaks[user] = found
    return leaks


async def export_person(companion: Companion, user_id: str) -> dict[str, Any]:
    """Everything kept about a person: what ``sam2voice memory export`` prints (memory elements,
    coaching store, session threads), plus each thread's checkpointed messages."""
    registry: MemoryRegistry = companion.deps.memory.registry
    namespace = registry.backend.settings.namespace
    data: dict[str, Any] = dict(await registry.export(user_id))
    data["coaching"] = await CoachingStore(registry.backend.client, namespace).export(user_id)
    directory = SessionDirectory(registry.backend.client, namespace)
    data["sessions"] = threads = await directory.threads(user_id)
    conversations = {}
    for thread_id in threads:
        snapshot = await companion.graph.aget_state({"configurable": {"thread_id": thread_id, "user_id": user_id}})
        conversations[thread_id] = [message_text(m) for m in (snapshot.values or {}).get("messages", [])]
    data["conversations"] = conversations
    return data


def _degraded(result: TurnResult) -> bool:
    notice = (result.notice or "").lower()
    return result.degraded or result.notice == MEMORY_OFFLINE_NOTICE or ("memory" in notice and "offline" in notice)


class _Tally:
    """What the people's turns produced, shared by all of them (one event loop: no locks)."""

    def __init__(self, total: int, say: Callable[..., Any]) -> None:
        self.total, self.say = total, say
        self.turn_ms: list[float] = []
        self.errors: dict[str, dict[str, Any]] = {}
        self.degraded = 0
        self.done = 0
        self._next_report = max(1, total // 10)

    def error(self, exc: BaseException) -> None:
        entry = self.errors.setdefault(type(exc).__name__, {"count": 0, "messages": []})
        entry["count"] += 1
        if len(entry["messages"]) < SAMPLE_ERRORS:
            entry["messages"].append(str(exc)[:300])

    def turn(self, ms: float | None, *, degraded: bool) -> None:
        if ms is not None:
            self.turn_ms.append(ms)
        self.degraded += degraded
        self.done += 1
        if self.done >= self._next_report or self.done == self.total:
            self._next_report += max(1, self.total // 10)
            errors = sum(e["count"] for e in self.errors.values())
            self.say(f"{self.done}/{self.total} turns  errors {errors}  degraded {self.degraded}")


# --- text path ----------------------------------------------------------------------------------


async def _text_person(companion: Companion, user: str, index: int, messages: list[str], tally: _Tally) -> None:
    session = companion.session(user, seed=index)
    for text in messages:
        start = time.perf_counter()
        try:
            result = await session.send(text)
        except Exception as exc:  # counted, then the person carries on
            tally.error(exc)
            tally.turn(None, degraded=False)
            continue
        tally.turn((time.perf_counter() - start) * 1000, degraded=_degraded(result))


# --- voice path ---------------------------------------------------------------------------------


class _VoiceSink:
    """One person's voice events: counts finished assistant turns and degraded statuses."""

    def __init__(self) -> None:
        self.done = 0
        self.degraded = 0
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: Any) -> None:
        from voice.events import ErrorEvent, Status, Transcript

        if isinstance(event, Transcript) and event.role == "assistant" and event.final:
            self.done += 1
            self.changed.set()
        elif isinstance(event, Status) and event.state == "degraded":
            self.degraded += 1
        elif isinstance(event, ErrorEvent):
            self.errors.append(f"{event.code}: {event.message}")

    async def wait(self, n: int, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while self.done < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.perf_counter()))


class _StartLine:
    """Holds every voice person until all of them are connected, so the timed run is turns only."""

    def __init__(self, people: int) -> None:
        self.waiting = people
        self.go = asyncio.Event()
        self.started_at = 0.0

    async def ready(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0 and not self.go.is_set():
            self.started_at = time.perf_counter()
            self.go.set()
        await self.go.wait()


class _BackgroundErrors(logging.Handler):
    """Failures of the voice session's background steps (logged there, never raised to the caller)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _voice_person(companion: Companion, user: str, index: int, messages: list[str], tally: _Tally,
                        metrics: dict[str, list[float]], start_line: _StartLine, *, turn_timeout_s: float) -> None:
    import numpy as np
    from google import genai

    from app.eval.fakes.live import FakeLiveServer, LiveTurn
    from voice.link import CompanionLink
    from voice.live import LiveOptions, LiveVoiceSession

    frame = (3000 * np.sin(2 * np.pi * 220 * np.arange(1600) / 16_000)).astype("<i2").tobytes()  # 100 ms
    async with FakeLiveServer() as fake:
        client = genai.Client(api_key="bench", http_options=fake.http_options())
        sink = _VoiceSink()
        link = CompanionLink(companion.session(user, seed=index))
        session = LiveVoiceSession(link, client, sink, tools=companion.deps.tools,
                                   options=LiveOptions(checkin_poll_s=300))
        runner = asyncio.create_task(session.run())
        lined_up = False
        try:
            await fake.wait_until(lambda: len(fake.setups) >= 1, timeout=turn_timeout_s)
            lined_up = True
            await start_line.ready()
            for n, text in enumerate(messages, start=1):
                fake.script(LiveTurn(transcript=text, reply=REPLY, audio_ms=300))
                degraded_before = sink.degraded
                start = time.perf_counter()
                try:
                    for _ in range(4):
                        await session.push_audio(frame)
                    await session.end_of_speech()
                    await sink.wait(n, turn_timeout_s)
                    while session._tasks:  # noqa: SLF001 - the turn's graph work, as `bench voice` waits for it
                        await asyncio.sleep(0.005)
                except Exception as exc:
                    tally.error(exc)
                    tally.turn(None, degraded=sink.degraded > degraded_before)
                    if runner.done():
                        break
                    continue
                tally.turn((time.perf_counter() - start) * 1000, degraded=sink.degraded > degraded_before)
        except Exception as exc:  # the Live session never came up
            tally.error(exc)
            if not lined_up:
                await start_line.ready()  # not to hold the others
        finally:
            await session.close()
            try:
                await asyncio.wait_for(runner, 10)
            except Exception as exc:
                tally.error(exc)
        for message in sink.errors:
            tally.error(RuntimeError(message))
        for key in ("memory_path_ms", "first_audio_ms"):
            metrics[key].extend(session.metrics[key])


# --- the benchmark ------------------------------------------------------------------------------


async def run_load_bench(settings: Settings, *, people: int, turns: int, voice: bool = False,
                         console: Console | None = None, turn_timeout_s: float = 120.0) -> dict[str, Any]:
    """Run the load benchmark; returns a JSON-ready dict (progress on ``console`` if given)."""
    if people < 1 or turns < 1:
        raise ValueError("people and turns must be >= 1")
    say = console.log if console else (lambda *_: None)
    run_id = secrets.token_hex(3)
    namespace = f"benchl{run_id}"
    users = {f"load-{run_id}-{i}": i for i in range(people)}
    warmup = f"load-{run_id}-warmup"
    markers = {user: marker(i) for user, i in users.items()} | {warmup: marker("warm")}
    with scratch_redis(settings) as (url, where), tempfile.TemporaryDirectory(prefix="sam2voice-load-") as data_dir:
        scratch = settings.model_copy(update={
            "redis_url": url, "data_dir": Path(data_dir), "embedding_provider": "local", "weave_project": None,
            "memory": settings.memory.model_copy(update={"namespace": namespace})})
        async with Companion.build(scratch, chat_provider="template") as companion:
            try:
                say("warming up (models load on the first turn) ...")
                await companion.session(warmup, seed="warmup").send(f"hello, {markers[warmup]} warming up")
                tally = _Tally(people * turns, say)
                metrics: dict[str, list[float]] = {"memory_path_ms": [], "first_audio_ms": []}
                background = _BackgroundErrors()
                logging.getLogger("voice").addHandler(background)
                say(f"{people} people x {turns} turns, concurrently{' by voice (fake Live)' if voice else ''} ...")
                start_line = _StartLine(people)
                start = time.perf_counter()
                try:
                    if voice:
                        await asyncio.gather(*(
                            _voice_person(companion, user, i, script(i, turns), tally, metrics, start_line,
                                          turn_timeout_s=turn_timeout_s) for user, i in users.items()))
                    else:
                        await asyncio.gather(*(_text_person(companion, user, i, script(i, turns), tally)
                                               for user, i in users.items()))
                finally:
                    # voice: from the moment everyone is connected (the Live setups are not timed)
                    wall_s = time.perf_counter() - (start_line.started_at if voice else start)
                    logging.getLogger("voice").removeHandler(background)
                say(f"run done in {wall_s:.1f} s; exporting everyone's data ...")
                exports = {user: await export_person(companion, user) for user in [*users, warmup]}
                leaks = find_leaks(exports, markers)
                own_found = sum(1 for user in users if re.search(rf"\b{markers[user]}\b", repr(exports[user])))
            finally:
                await _cleanup(companion, [*users, warmup], namespace)
    errors = sum(e["count"] for e in tally.errors.values())
    result: dict[str, Any] = {
        "path": "voice" if voice else "text",
        "people": people, "turns_per_person": turns, "total_turns": people * turns,
        "completed_turns": len(tally.turn_ms),
        "wall_s": round(wall_s, 3), "turns_per_s": round(people * turns / wall_s, 2),
        **percentiles("turn", tally.turn_ms),
        "errors": errors, "errors_by_type": tally.errors,
        "degraded_turns": tally.degraded,
        "leaks": len(leaks), "leaked": {user: others[:5] for user, others in list(leaks.items())[:5]},
        "own_marker_found": own_found,
        "chat_model": "template", "redis": where, "namespace": namespace,
        "machine": (facts := machine()) | {"cpu_count": facts["cpu_cores"]},
    }
    if voice:
        result.update({
            "context_updates_sent": len(metrics["memory_path_ms"]),
            **percentiles("memory_path", metrics["memory_path_ms"]),
            **percentiles("first_audio", metrics["first_audio_ms"]),
            "background_errors": len(background.records),
            "voice_note": "one fake Live server per person (the fake serves a single connection and script "
                          "queue); all sessions run concurrently in this process against the one companion",
        })
    say(f"{result['turns_per_s']} turns/s, p95 {result['turn_p95_ms']} ms, errors {errors}, "
        f"degraded {tally.degraded}, leaks {len(leaks)}")
    return result


async def _cleanup(companion: Companion, users: list[str], namespace: str) -> None:
    """Delete the run's people (checkpoints too) and the scratch namespace (matters on ``REDIS_URL``)."""
    from langgraph.checkpoint.redis.ashallow import AsyncShallowRedisSaver

    from app.eval.bench.memory import _drop_namespace

    stack = companion.deps.memory
    try:
        saver = AsyncShallowRedisSaver(redis_client=stack.client)
        await saver.asetup()
        directory = SessionDirectory(stack.client, namespace)
        for user in users:
            await directory.forget(user, saver)
        await _drop_namespace(stack, namespace)
    except Exception as exc:  # a scratch server is deleted anyway; never hide the figures for this
        log.warning("load bench: cleanup of %s failed: %s", namespace, exc)


__all__ = ["MESSAGES", "export_person", "find_leaks", "marker", "run_load_bench", "script"]
