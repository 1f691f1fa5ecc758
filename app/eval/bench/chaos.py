"""``sam2voice bench chaos``: kill -9 the embedded Redis at random points while people talk,
and count what was lost, doubled or thrown at the caller.

Two processes share one data dir, as a CLI chat next to a voice server would: this one and a
worker subprocess (``python -m app.eval.bench.chaos --worker``), each with its own person, its own
outbox file and the same Redis. At ``kills`` randomly chosen turns of this process (or the
first turn after that one which runs on Redis) the server is killed with SIGKILL a few
milliseconds into the turn (so mid-turn, while nodes write), kept
down for a random 0.03-0.3 s (later turns run degraded), and restarted on its AOF. When both
processes are done, a fresh companion opens the data dir (adopting and replaying every outbox
file left behind), and everything the people were told is checked against Redis:

* ``interventions_expected``: turns whose reply was an intervention (its id is the session's
  ``last_intervention_id``); ``found``, ``duplicated`` (extra records for one turn's message)
  and ``lost`` (expected ids missing).
* ``outcomes_lost``: outcomes a turn reported settled that Redis does not hold.
* ``tool_state_lost``: the plan the person last saw (task and current step) and each reminder
  they were promised, compared with the coaching store.
* ``exceptions``: exceptions that reached the caller; ``longest_turn_s``.

Targets (issue 10): 0 duplicated, 0 lost, 0 escaped exceptions, no turn over 5 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from app.companion import Companion
from app.embedded_redis import EmbeddedRedis
from app.eval.bench.common import machine
from app.settings import Settings
from graphs.session import CompanionSession
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome

log = logging.getLogger(__name__)

# What the person says, in turn; ``{k}`` makes each message unique (records map back to turns).
SCRIPT = [
    "i cant start my essay {k}",
    "that helped {k}",
    "can you break cleaning my room into small steps {k}",
    "ok did the first one {k}",
    "remind me to drink water in 30 minutes {k}",
    "everything is too loud and i'm overwhelmed {k}",
    "nah still stuck {k}",
    "i keep scrolling instead of doing the dishes {k}",
    "no that didn't help {k}",
]
MAX_TURN_S = 5.0
PAUSE_S = 0.05  # between a person's turns (people pause; outages then span a few turns, not all)


def message(person: str, turn: int) -> str:
    """Turn ``turn``'s words for ``person`` (unique per person and turn)."""
    return SCRIPT[turn % len(SCRIPT)].format(k=f"{person}{turn}q")


async def talk(companion: Companion, user: str, turns: int, *, before_turn: Any = None, pause_s: float = 0.0,
               status: dict[str, bool] | None = None, first: int = 0, session: CompanionSession | None = None
               ) -> list[dict[str, Any]]:
    """Run ``turns`` turns for ``user``; one record per turn of what the person was told
    (``status["degraded"]`` follows whether the session is running without Redis)."""
    session = session or companion.session(user, seed=user)
    status = status if status is not None else {}
    records: list[dict[str, Any]] = []
    for turn in range(first, first + turns):
        await asyncio.sleep(pause_s)
        text = message(user, turn)
        if before_turn is not None:
            await before_turn(turn)
        start = time.perf_counter()
        record: dict[str, Any] = {"turn": turn, "said": text}
        try:
            result = await session.send(text)
        except Exception as exc:  # counted: a person must never see one
            record["exception"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            record.update(
                intervention=session.values.get("last_intervention_id")
                if result.decision and result.decision.intervention else None,
                settled=[{"id": s["id"], "outcome": s["outcome"]} for s in result.settled],
                tool=result.tool, plan=result.plan.model_dump() if result.plan else None, degraded=result.degraded)
            status["degraded"] = result.degraded
        record["seconds"] = round(time.perf_counter() - start, 3)
        records.append(record)
    return records


class Killer:
    """Kills the embedded server with SIGKILL and restarts it, one outage at a time."""

    def __init__(self, server: EmbeddedRedis, rng: random.Random, status: dict[str, bool]) -> None:
        self.server, self.rng, self.status = server, rng, status
        self.kills = 0
        self.healthy_kills = 0  # kills that hit a turn running on Redis (the re-run-on-fallback case)
        self._lock = asyncio.Lock()  # a kill waits for the previous restart: two servers must not race
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def busy(self) -> bool:
        """An outage is under way."""
        return self._lock.locked()

    def kill_soon(self) -> None:
        """Kill a few ms from now (mid-turn), then restart after a random outage."""
        self.tasks.append(asyncio.create_task(self._outage()))

    async def _outage(self) -> None:
        async with self._lock:
            await asyncio.sleep(self.rng.uniform(0.0, 0.06))
            pid = self.server.status().pid
            if pid is None:
                return
            os.kill(pid, signal.SIGKILL)
            self.kills += 1
            self.healthy_kills += not self.status.get("degraded", False)
            await asyncio.sleep(self.rng.uniform(0.03, 0.3))
            await asyncio.to_thread(self.server.start)

    async def settle(self) -> None:
        """Wait for every outage to end; leave the server running."""
        await asyncio.gather(*self.tasks)
        await asyncio.to_thread(self.server.start)


def chaos_settings(settings: Settings, url: str, data_dir: Path) -> Settings:
    """Settings of both processes: the test server, the shared data dir, the template model."""
    return settings.model_copy(update={"redis_url": url, "data_dir": data_dir, "chat_provider": "template",
                                       "redis_connect_timeout_s": 0.5})


async def verify(companion: Companion, user: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare what ``user`` was told with what Redis holds."""
    interventions = companion.deps.memory.registry.get(InterventionMemory)
    assert interventions is not None
    stored = await interventions.export(user)
    by_id = {interventions.index.record_id(row["key"]): row for row in stored}
    per_message: dict[str, int] = {}
    for row in stored:
        per_message[row.get("user_context", "")] = per_message.get(row.get("user_context", ""), 0) + 1
    expected = {r["intervention"]: r["said"] for r in records if r.get("intervention")}
    lost = sorted(i for i in expected if i not in by_id)
    settled: dict[str, str] = {}
    for record in records:
        for item in record.get("settled") or []:
            settled[item["id"]] = item["outcome"]
    outcomes_lost = sorted(i for i, outcome in settled.items()
                           if i in by_id and Outcome(by_id[i]["outcome"]) is Outcome.PENDING and outcome != "pending")
    store = companion.deps.store
    tool_lost: list[str] = []
    told = [(r["turn"], r["plan"]) for r in records if r.get("plan")]
    plan = await store.plan(user)
    if told and (plan is None or plan.task != told[-1][1]["task"]
                 or (None if plan.done else plan.current + 1) != told[-1][1]["current"]):
        turn, last = told[-1]
        tail = [(r["turn"], r.get("tool"), r.get("degraded"), (r.get("plan") or {}).get("task"),
                 (r.get("plan") or {}).get("current")) for r in records[-6:]]
        tool_lost.append(f"plan: told {last['task']!r} step {last['current']} at turn {turn}, stored "
                         f"{plan.task if plan else None!r} step {None if plan is None else plan.current + 1}; "
                         f"last turns {tail}")
    promised = sum(1 for r in records if r.get("tool") == "create_reminder")
    reminders = [i for i in await store.upcoming(user, limit=50) if i.kind == "reminder"]
    if len(reminders) < promised:
        tool_lost.append(f"reminders: promised {promised}, stored {len(reminders)}")
    return {
        "turns": len(records),
        "degraded_turns": sum(1 for r in records if r.get("degraded")),
        "interventions_expected": len(expected),
        "interventions_found": sum(1 for i in expected if i in by_id),
        "interventions_duplicated": sum(n - 1 for said, n in per_message.items() if n > 1
                                        and said in set(expected.values())),
        "interventions_lost": len(lost),
        "outcomes_settled": len(settled),
        "outcomes_lost": len(outcomes_lost),
        "tool_state_lost": len(tool_lost),
        "tool_state_problems": tool_lost[:5],
        "exceptions": sum(1 for r in records if r.get("exception")),
        "exception_samples": [r["exception"] for r in records if r.get("exception")][:3],
        "longest_turn_s": max((r["seconds"] for r in records), default=0.0),
    }


async def run_chaos_bench(settings: Settings, *, turns: int, kills: int, seed: int = 7, worker_turns: int | None = None,
                          console: Console | None = None) -> dict[str, Any]:
    """Run the chaos benchmark (see the module docstring) and return its figures."""
    say = console.print if console is not None else (lambda *_: None)
    rng = random.Random(seed)
    kill_at = set(rng.sample(range(1, turns), min(kills, turns - 1)))
    worker_turns = turns if worker_turns is None else worker_turns
    with tempfile.TemporaryDirectory(prefix="sam2voice-chaos-") as tmp:
        data_dir = Path(tmp)
        server = EmbeddedRedis(data_dir / "redis")
        url = server.start()
        try:
            run = chaos_settings(settings, url, data_dir)
            status: dict[str, bool] = {}
            killer = Killer(server, rng, status)
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.eval.bench.chaos", "--worker", url, str(data_dir), "chaos-b",
                str(worker_turns),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[3])
            assert worker.stdout is not None
            await asyncio.wait_for(worker.stdout.readline(), 120)  # "ready": both processes talk at once
            say(f"chaos: {turns} turns here and {worker_turns} in a second process, {len(kill_at)} kills")

            owed = 0

            async def before_turn(turn: int) -> None:
                # A kill falls due at each chosen turn; it hits the first turn after that which runs
                # on Redis (not one already degraded), so most kills land mid-write.
                nonlocal owed
                owed += turn in kill_at
                if owed and not status.get("degraded") and not killer.busy:
                    owed -= 1
                    killer.kill_soon()
                if turn and turn % max(1, turns // 10) == 0:
                    say(f"  turn {turn}/{turns}, {killer.kills} kills so far")

            async with Companion.build(run) as companion:
                started = time.perf_counter()
                session = companion.session("chaos-a", seed="chaos-a")
                mine = await talk(companion, "chaos-a", turns, before_turn=before_turn, pause_s=PAUSE_S, status=status,
                                  session=session)
                while owed and len(mine) < 2 * turns:  # kills still due: a few more turns until all have happened
                    mine += await talk(companion, "chaos-a", 1, before_turn=before_turn, pause_s=PAUSE_S,
                                       status=status, first=len(mine), session=session)
                wall_s = time.perf_counter() - started
            out, err = await worker.communicate()
            if worker.returncode != 0:
                raise RuntimeError(f"the second process failed: {err.decode()[-1500:]}")
            theirs = json.loads(out.decode())
            await killer.settle()
            say(f"chaos: done ({killer.kills} kills); checking what Redis holds")
            async with Companion.build(run) as fresh:  # adopts and replays every outbox file left behind
                adopted = fresh.deps.outbox.adopted
                left = len(fresh.deps.outbox)
                figures = {"this_process": await verify(fresh, "chaos-a", mine),
                           "second_process": await verify(fresh, "chaos-b", theirs)}
            leftovers = sorted(p.name for p in (data_dir / "outbox").glob("outbox*.json") if p.stat().st_size > 2)
        finally:
            server.stop()
    totals = {key: sum(f[key] for f in figures.values()) for key in (
        "turns", "degraded_turns", "interventions_expected", "interventions_found", "interventions_duplicated",
        "interventions_lost", "outcomes_settled", "outcomes_lost", "tool_state_lost", "exceptions")}
    totals["longest_turn_s"] = max(f["longest_turn_s"] for f in figures.values())
    met = (totals["interventions_duplicated"] == 0 and totals["interventions_lost"] == 0
           and totals["outcomes_lost"] == 0 and totals["tool_state_lost"] == 0 and totals["exceptions"] == 0
           and totals["longest_turn_s"] <= MAX_TURN_S)
    return {"turns_requested": turns, "kills_planned": len(kill_at), "kills": killer.kills,
            "kills_during_healthy_turns": killer.healthy_kills, "seed": seed,
            "wall_s": round(wall_s, 1), **totals, "target_met": met, "outbox_writes_adopted_at_restart": adopted,
            "outbox_writes_left": left, "outbox_files_left": leftovers, "per_process": figures,
            "machine": machine()}


async def _worker(url: str, data_dir: str, user: str, turns: int) -> None:
    settings = chaos_settings(Settings(), url, Path(data_dir))
    for attempt in range(40):  # a process cannot start while Redis is down: it retries, as a supervisor would
        try:
            async with Companion.build(settings) as companion:
                print("ready", flush=True)
                records = await talk(companion, user, turns, pause_s=PAUSE_S)
            break
        except Exception:  # Redis (or its checkpoint index) unreachable at start-up
            if attempt == 39:
                raise
            await asyncio.sleep(0.25)
    print(json.dumps(records))


if __name__ == "__main__":  # the second process: python -m app.eval.bench.chaos --worker URL DATA_DIR USER TURNS
    if sys.argv[1:2] != ["--worker"] or len(sys.argv) != 6:
        raise SystemExit("usage: python -m app.eval.bench.chaos --worker URL DATA_DIR USER TURNS")
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
