"""Cluster-ready key layout: every multi-key operation touches keys of one hash slot.

The real operations run against the real embedded server while a second connection
watches them with MONITOR. Each atomic unit the server ran (an EVAL/EVALSHA with the
commands its script ran, a MULTI ... EXEC block, a single command naming several keys)
is taken apart with COMMAND GETKEYS, and the Redis Cluster slot of every key
(``redis.crc.key_slot``: CRC16 of the hash tag) must be the person's. Beyond that, every
key an operation of one person touches at all must be in that person's slot, except the
shared embedding cache (not about anyone).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.memory import InMemorySaver
from redis.crc import key_slot
from redis.exceptions import ResponseError

from graphs.session import SessionDirectory
from memories.current_state import CurrentStateMemory
from memories.feedback import FeedbackMemory
from memories.interventions import InterventionMemory
from memories.keys import person_key, person_tag
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from memories.validation import user_tag
from tests.conftest import element
from tools.store import KINDS, CoachingStore, SafetyEvent

T0 = 1_700_000_000.0
MAYA, ADA = "maya", "Ada Lovelace"  # tags "maya" and "AdaZ20ZLovelace": different slots
NO_KEYS = {b"MULTI", b"EXEC", b"DISCARD", b"ECHO", b"PING", b"HELLO", b"CLIENT", b"SCRIPT", b"INFO",
           b"MODULE", b"COMMAND", b"SELECT", b"MONITOR"}
LINE = re.compile(rb"^\+?\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")
ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a", ord("b"): b"\b",
           ord("\\"): b"\\", ord('"'): b'"'}


def monitor_args(text: bytes) -> list[bytes]:
    """The arguments of one MONITOR line: quoted, backslash-escaped (sdscatrepr)."""
    def unescape(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        return bytes([int(code[1:], 16)]) if code[:1] == b"x" else ESCAPES[code[0]]

    return [ESCAPE.sub(unescape, arg) for arg in ARG.findall(text)]


@dataclass
class Unit:
    """What the server runs as one step: its commands (a script's own calls included)."""

    kind: str
    commands: list[list[bytes]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class Monitor:
    """MONITOR on a connection of its own; :meth:`capture` records what one operation sent."""

    def __init__(self, url: str, client: aioredis.Redis) -> None:
        self.url = urlparse(url)
        self.client = client
        self.seen: list[tuple[bytes, list[bytes]]] = []  # (client address or b"lua", arguments)
        self._marks: dict[bytes, asyncio.Event] = {}

    async def __aenter__(self) -> Monitor:
        if self.url.scheme == "unix":  # the embedded server's private socket
            self._reader, self._writer = await asyncio.open_unix_connection(self.url.path, limit=2**26)
        else:
            self._reader, self._writer = await asyncio.open_connection(self.url.hostname, self.url.port, limit=2**26)
        self._writer.write(b"MONITOR\r\n")
        await self._writer.drain()
        assert (await self._reader.readline()).startswith(b"+OK")
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        self._writer.close()

    async def _read(self) -> None:
        while line := await self._reader.readline():
            match = LINE.match(line.rstrip(b"\r\n"))
            if match is None:
                continue
            who, args = match.group(1), monitor_args(match.group(2))
            if args[:1] == [b"ECHO"] and args[1] in self._marks:
                self._marks[args[1]].set()
                continue
            self.seen.append((who, args))

    async def _sync(self) -> int:
        token = f"mark-{uuid.uuid4().hex}".encode()
        self._marks[token] = asyncio.Event()
        await self.client.echo(token)
        marked = asyncio.ensure_future(self._marks[token].wait())
        await asyncio.wait([marked, self._task], timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()  # the reader failed: raise what it met
        assert marked.done(), "MONITOR did not show the mark within 5 s"
        del self._marks[token]
        return len(self.seen)

    async def capture(self, operation: Awaitable[object]) -> list[tuple[bytes, list[bytes]]]:
        """The commands the server ran while ``operation`` ran."""
        start = await self._sync()
        await operation
        return self.seen[start:await self._sync()]

    async def keys(self, command: list[bytes]) -> list[str]:
        """The key arguments of a command, as the server itself reads them."""
        name = command[0].upper()
        if name in NO_KEYS or name.startswith(b"FT."):  # FT.* name an index, not a key
            return []
        try:
            return [k.decode() if isinstance(k, bytes) else k for k in await self.client.command_getkeys(*command)]
        except ResponseError:  # "The command has no key arguments"
            return []

    async def units(self, seen: list[tuple[bytes, list[bytes]]]) -> list[Unit]:
        """The atomic units in ``seen``, each with the keys of all its commands."""
        units: list[Unit] = []
        open_multi: dict[bytes, Unit] = {}
        script: Unit | None = None
        for who, args in seen:
            name = args[0].upper()
            if who == b"lua":  # a script's own call: it belongs to the EVAL just before it
                assert script is not None
                script.commands.append(args)
                continue
            if name == b"SCRIPT" and script is not None and len(script.commands) == 1 and units[-1] is script:
                units.pop()  # that EVALSHA failed (NOSCRIPT) and is sent again after the load
            script = None
            if name == b"MULTI":
                open_multi[who] = Unit("MULTI")
            elif name in (b"EXEC", b"DISCARD"):
                units.append(open_multi.pop(who))
            elif who in open_multi:
                open_multi[who].commands.append(args)
            elif name in (b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO"):
                script = Unit(name.decode(), [args])
                units.append(script)
            elif len(set(await self.keys(args))) > 1:
                units.append(Unit(name.decode(), [args]))
        assert not open_multi, "a MULTI without EXEC"
        for unit in units:
            for command in unit.commands:
                unit.keys.extend(k for k in await self.keys(command) if k not in unit.keys)
        return units


@pytest.fixture
async def monitor(redis_url: str, stack: MemoryStack) -> AsyncIterator[Monitor]:
    async with Monitor(redis_url, stack.client) as watching:
        yield watching


def slot_of(user_id: str) -> int:
    return key_slot(user_tag(user_id).encode())


def namespace(stack: MemoryStack) -> str:
    return stack.registry.backend.settings.namespace


async def check(monitor: Monitor, stack: MemoryStack, user_id: str, operation: Awaitable[object], *,
                units: int = 1) -> list[Unit]:
    """Run ``operation`` of ``user_id``: at least ``units`` atomic units, each in one slot, the
    person's; and every key it touched (but the shared embedding cache) in that slot too."""
    seen = await monitor.capture(operation)
    found = await monitor.units(seen)
    assert len(found) >= units, (found, seen)
    slot, tag = slot_of(user_id), person_tag(user_id)
    for unit in found:
        assert unit.keys, unit
        assert {key_slot(k.encode()) for k in unit.keys} == {slot}, unit
        assert all(tag in k for k in unit.keys), unit
        declared = unit.keys if unit.kind.startswith("EVAL") else []
        if declared:  # a script touches only the keys it declared (what a cluster routes by)
            assert set(await monitor.keys(unit.commands[0])) == set(unit.keys), unit
    # Shared by everyone: the embedding cache, and the population counts (checked on their own below).
    shared = (f"{namespace(stack)}:embedcache:", f"{namespace(stack)}:population:")
    touched = {k for _, args in seen for k in await monitor.keys(args) if not k.startswith(shared)}
    assert touched, seen
    assert {key_slot(k.encode()) for k in touched} == {slot}, sorted(touched)
    return found


def test_two_people_have_their_own_slots() -> None:
    assert slot_of(MAYA) != slot_of(ADA)
    assert person_tag(ADA) == "{AdaZ20ZLovelace}"
    # Braces in an id are encoded like every other non-alphanumeric: the tag stays the person's.
    assert person_tag("a{b}c") == "{aZ7bZbZ7dZc}"
    assert person_key("ns", "coach", "plan", user_id="}{") == "ns:coach:plan:{Z7dZZ7bZ}"


def test_every_per_person_key_carries_the_hash_tag(stack: MemoryStack) -> None:
    ns = namespace(stack)
    store, directory = CoachingStore(stack.client, ns), SessionDirectory(stack.client, ns)
    for user_id in (MAYA, ADA, "a{b}c", "Zoë"):
        tag = person_tag(user_id)
        keys = [store.key(kind, user_id) for kind in KINDS]
        keys += [directory._key(user_id), directory._threads_key(user_id)]
        keys += [element(stack, InterventionMemory)._stats_key(user_id),
                 element(stack, FeedbackMemory)._summary_key(user_id)]
        keys += [element(stack, kind)._key(user_id) for kind in (ProfileMemory, CurrentStateMemory)]
        keys += [element(stack, kind).index.key(user_id, "abc123")
                 for kind in (InterventionMemory, ReflectionMemory, FeedbackMemory)]
        for key in keys:
            assert key.index("{") == key.index(tag), key  # the person's tag is the key's first braces
            assert key_slot(key.encode()) == slot_of(user_id), key
    assert element(stack, InterventionMemory).index.key(MAYA, "abc") == \
        f"{ns}:interventions:{stack.registry.backend.vector_tag}:{{maya}}:abc"
    assert element(stack, ProfileMemory)._key(MAYA) == f"{ns}:profile:{{maya}}"
    assert store.key("applied", MAYA) == f"{ns}:coach:applied:{{maya}}"


async def test_memory_operations_stay_in_the_persons_slot(stack: MemoryStack, monitor: Monitor) -> None:
    interventions = element(stack, InterventionMemory)
    for user_id in (MAYA, ADA):
        # Recorded with a known outcome: the counters change in one MULTI.
        [done] = await interventions.record_many(user_id, [{"text": "Two minutes only", "user_context": "stuck",
                                                            "tool_name": "microsteps",
                                                            "outcome": "task_completed"}])
        pending = await interventions.save(user_id, {"text": "Breathe", "user_context": "loud room"})
        await check(monitor, stack, user_id, interventions.record_many(
            user_id, [{"text": "Body double", "user_context": "dishes", "outcome": "task_progress"}]))
        # settle: one script over the record and the person's counters.
        [unit] = await check(monitor, stack, user_id, interventions.settle(user_id, pending, Outcome.RE_ENGAGED))
        assert interventions.index.key(user_id, pending) in unit.keys
        assert interventions._stats_key(user_id) in unit.keys
        [unit] = await check(monitor, stack, user_id, interventions.settle(user_id, done.id, Outcome.ABANDONED))
        assert len(unit.keys) == 3  # the record, the counters, the person's pool contributions
        await check(monitor, stack, user_id, interventions.success_rates(user_id), units=0)

        state = element(stack, CurrentStateMemory)
        await check(monitor, stack, user_id, state.add_win(user_id, "Did the dishes"))
        await check(monitor, stack, user_id, state.update(user_id, {"mood": "calm"}))
        await check(monitor, stack, user_id, element(stack, ProfileMemory).update(user_id, {"name": "M"}))

        feedback = element(stack, FeedbackMemory)
        await check(monitor, stack, user_id, feedback.save(user_id, {"rating": 2, "tags": ["too long"],
                                                                     "comment": "Shorter please"}), units=0)
        await check(monitor, stack, user_id, feedback.refresh_summary(user_id), units=0)
        await check(monitor, stack, user_id, element(stack, ReflectionMemory).save(
            user_id, {"insight": "Short steps help with the dishes"}), units=0)

    # forget: one UNLINK per element over all the person's records, and the counters.
    units = await check(monitor, stack, MAYA, stack.registry.forget(MAYA))
    assert any(len(u.keys) >= 3 for u in units)  # e.g. every intervention of Maya's at once
    assert (await interventions.success_rates(ADA))  # Ada's own data is untouched


async def test_pool_contributions_touch_the_persons_slot_then_one_clusters_slot(stack: MemoryStack,
                                                                                monitor: Monitor) -> None:
    interventions = element(stack, InterventionMemory)
    pending = await interventions.save(MAYA, {"text": "Tiny first step", "tool_name": "create_microsteps",
                                              "user_context": "I can't get started on it"})
    seen = await monitor.capture(interventions.settle(MAYA, pending, Outcome.TASK_PROGRESS, contribute=True))
    units = await monitor.units(seen)
    assert len(units) == 2, units  # the settle (the person's slot), then the push (the cluster's slot)
    settle, push = units
    assert {key_slot(k.encode()) for k in settle.keys} == {slot_of(MAYA)}
    assert all(k.startswith(f"{namespace(stack)}:population:") for k in push.keys), push
    assert len({key_slot(k.encode()) for k in push.keys}) == 1 and len(push.keys) == 2
    assert set(await monitor.keys(push.commands[0])) == set(push.keys)  # declared keys only
    [retract, *pushes] = await monitor.units(await monitor.capture(interventions.population.retract(MAYA)))
    assert {key_slot(k.encode()) for k in retract.keys} == {slot_of(MAYA)} and len(pushes) == 1


async def test_coaching_scripts_stay_in_the_persons_slot(stack: MemoryStack, monitor: Monitor) -> None:
    store = CoachingStore(stack.client, namespace(stack))
    for user_id in (MAYA, ADA):
        [unit] = await check(monitor, stack, user_id, store.save_plan(
            user_id, "clean the kitchen", ["Clear the counter", "Load the dishwasher", "Wipe"], now=T0, key="k1"))
        assert unit.keys == [store.key("applied", user_id), store.key("plan", user_id)]
        await check(monitor, stack, user_id, store.complete_steps(user_id, 1, now=T0 + 60, key="k2"))
        await check(monitor, stack, user_id, store.split_current_step(user_id, ["Open it", "Fill it"], key="k3"))
        [unit] = await check(monitor, stack, user_id, store.add_checkin(user_id, T0 + 10, "the dishes", key="k4"))
        assert len(unit.keys) == 3  # applied, check-ins and reminders (the bound covers both)
        await check(monitor, stack, user_id, store.add_reminder(user_id, T0 + 20, "meds", key="k5"))
        [unit] = await check(monitor, stack, user_id, store.pop_due(user_id, T0 + 30))
        assert set(unit.keys) == {store.key(k, user_id) for k in ("checkins", "reminders", "last_checkin")}
        await check(monitor, stack, user_id, store.record_safety_event(
            user_id, SafetyEvent(kind="medical", at=T0), key="k6"))
        await check(monitor, stack, user_id, store.mark_applied(user_id, "k7"))
        await check(monitor, stack, user_id, store.upcoming(user_id), units=0)
    [unit] = await check(monitor, stack, MAYA, store.forget(MAYA))
    assert len(unit.keys) == len(KINDS)
    assert (await store.plan(ADA)) is not None


async def test_session_directory_transactions_stay_in_the_persons_slot(stack: MemoryStack,
                                                                       monitor: Monitor) -> None:
    directory = SessionDirectory(stack.client, namespace(stack))
    for user_id in (MAYA, ADA):
        [unit] = await check(monitor, stack, user_id, directory.start(user_id))
        assert unit.kind == "MULTI" and unit.keys == [directory._key(user_id), directory._threads_key(user_id)]
        [unit] = await check(monitor, stack, user_id, directory.adopt(user_id, f"s{uuid.uuid4().hex}"))
        assert len(unit.keys) == 2
        await check(monitor, stack, user_id, directory.touch(user_id), units=0)
    [unit] = await check(monitor, stack, MAYA, directory.forget(MAYA, InMemorySaver()))
    assert unit.kind == "UNLINK" and len(unit.keys) == 2
    assert await directory.current(ADA) is not None


async def test_the_checker_catches_a_cross_slot_script(stack: MemoryStack, monitor: Monitor) -> None:
    """The checker itself: a script over two people's keys is seen as spanning two slots."""
    keys = [f"{namespace(stack)}:probe:{person_tag(MAYA)}", f"{namespace(stack)}:probe:{person_tag(ADA)}"]
    seen = await monitor.capture(stack.client.eval("return redis.call('EXISTS', KEYS[1], KEYS[2])", 2, *keys))
    [unit] = await monitor.units(seen)
    assert unit.keys == keys and len({key_slot(k.encode()) for k in unit.keys}) == 2
    with pytest.raises(AssertionError):
        await check(monitor, stack, MAYA, stack.client.eval("return 1", 2, *keys))
    assert monitor_args(b'"EVALSHA" "ab" "2" "k:{a}" "x\\"y\\x01 \\\\"') == [
        b"EVALSHA", b"ab", b"2", b"k:{a}", b'x"y\x01 \\']
