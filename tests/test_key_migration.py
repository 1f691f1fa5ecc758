"""`sam2voice redis migrate`: data written in the old key layout reads back after the move.

The data is written through the normal APIs, then every key is renamed to the name the
code before the cluster-ready layout gave it (``old_names``, written out by hand from the
old formats), so the old layout holds real, complete data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from app.cli import app
from app.migrate import KeyMigration, migrate_keys
from graphs.session import SessionDirectory
from memories.current_state import CurrentStateMemory
from memories.feedback import FeedbackMemory
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from memories.stack import MemoryStack
from memories.validation import user_tag
from tests.conftest import element, memory_settings
from tools.store import KINDS, CoachingStore, SafetyEvent

T0 = 1_700_000_000.0
PEOPLE = ("maya", "Ada Lovelace")


def old_names(ns: str, vt: str, user_id: str) -> dict[str, str]:
    """Per-person keys as the code before the hash tags named them (kind -> key)."""
    tag = user_tag(user_id)
    names = {f"coach:{kind}": f"{ns}:coach:{kind}:{tag}" for kind in KINDS}
    names.update({
        "session": f"{ns}:session:{tag}", "session_threads": f"{ns}:session_threads:{tag}",
        "intervention_stats": f"{ns}:intervention_stats:{vt}:{tag}", "feedback_summary": f"{ns}:feedback_summary:{tag}",
        "profile": f"{ns}:profile:{tag}", "current_state": f"{ns}:current_state:{tag}",
    })
    return names


def old_record_name(prefix: str, record_id: str) -> str:
    """An index record as the code before named it: no person in the key."""
    return f"{prefix}:{record_id}"


async def keyspace(stack: MemoryStack) -> dict[str, int | None]:
    """Every key of the namespace (but the embedding cache) with its TTL."""
    ns = stack.registry.backend.settings.namespace
    keys = sorted([k.decode() async for k in stack.client.scan_iter(match=f"{ns}:*") if b"embedcache" not in k])
    return {k: await stack.client.ttl(k) for k in keys}


class Written:
    """What was written for one person, to check after the migration."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {}
        self.threads: list[str] = []


async def write_person(stack: MemoryStack, user_id: str) -> Written:
    ns = stack.registry.backend.settings.namespace
    store, directory = CoachingStore(stack.client, ns), SessionDirectory(stack.client, ns)
    out = Written()
    await store.save_plan(user_id, "clean the kitchen", ["Clear the counter", "Load it", "Wipe"], now=T0, key="p1")
    await store.complete_step(user_id, key="c1")  # (applied keys are kept by real time: no `now`)
    await store.add_checkin(user_id, T0 + 10, "the dishes", key="k1")
    await store.pop_due(user_id, T0 + 20)  # the last check-in is now T0 + 20
    await store.add_checkin(user_id, T0 + 100, "the laundry", key="k2")
    await store.add_reminder(user_id, T0 + 200, "take the meds", key="k3")
    await store.record_safety_event(user_id, SafetyEvent(kind="medical", at=T0), key="s1")
    out.threads = [(await directory.start(user_id)).thread_id, "s" + "1" * 32]
    await directory.adopt(user_id, out.threads[1])

    interventions = element(stack, InterventionMemory)
    stored = await interventions.record_many(user_id, [
        {"text": "Two minutes only", "user_context": "I can't start the dishes", "tool_name": "microsteps",
         "outcome": "task_completed"},
        {"text": "Breathe with me", "user_context": "the room is so loud", "tool_name": "breathing"},
    ])
    out.ids["interventions"] = [s.id for s in stored]
    out.ids["reflections"] = [await element(stack, ReflectionMemory).save(user_id, {"insight": "Tiny steps help"})]
    feedback = element(stack, FeedbackMemory)
    out.ids["feedback"] = [await feedback.save(user_id, {"rating": 5, "tags": ["kind"], "comment": "Lovely"})]
    await feedback.refresh_summary(user_id)
    await element(stack, ProfileMemory).update(user_id, {"name": "M", "timezone": "Europe/Berlin"})
    await element(stack, CurrentStateMemory).add_win(user_id, "Did the dishes")
    return out


async def to_old_layout(stack: MemoryStack, user_id: str, written: Written) -> int:
    """Rename every key of ``user_id`` to its old name; returns how many."""
    backend = stack.registry.backend
    ns, vt = backend.settings.namespace, backend.vector_tag
    store, directory = CoachingStore(stack.client, ns), SessionDirectory(stack.client, ns)
    new = {f"coach:{kind}": store.key(kind, user_id) for kind in KINDS}
    new.update({
        "session": directory._key(user_id), "session_threads": directory._threads_key(user_id),
        "intervention_stats": element(stack, InterventionMemory)._stats_key(user_id),
        "feedback_summary": element(stack, FeedbackMemory)._summary_key(user_id),
        "profile": element(stack, ProfileMemory)._key(user_id),
        "current_state": element(stack, CurrentStateMemory)._key(user_id),
    })
    pairs = [(new[kind], old) for kind, old in old_names(ns, vt, user_id).items()]
    for name, ids in written.ids.items():
        index = stack.registry.elements[name].index
        pairs += [(index.key(user_id, i), old_record_name(index.prefix, i)) for i in ids]
    for new_key, old_key in pairs:
        assert "{" in new_key and "{" not in old_key
        assert await stack.client.rename(new_key, old_key)
    return len(pairs)


async def test_old_layout_data_reads_back_after_the_migration_and_a_rerun_changes_nothing(
    stack: MemoryStack,
) -> None:
    ns = stack.registry.backend.settings.namespace
    store, directory = CoachingStore(stack.client, ns), SessionDirectory(stack.client, ns)
    written = {u: await write_person(stack, u) for u in PEOPLE}
    plans = {u: await store.plan(u) for u in PEOPLE}
    exported = {u: await stack.registry.export(u) for u in PEOPLE}
    old_count = sum([await to_old_layout(stack, u, written[u]) for u in PEOPLE])
    assert old_count == 2 * (len(KINDS) + 6 + 4)
    # In the old layout the normal APIs see none of it: the migration is needed.
    assert await store.plan("maya") is None and await directory.current("maya") is None
    assert await element(stack, ProfileMemory).get("maya") is None

    before = await keyspace(stack)
    dry = await migrate_keys(stack.client, ns, dry_run=True)
    assert len(dry.moved) == old_count and not dry.conflicts and not dry.skipped
    assert await keyspace(stack) == before  # a dry run moves nothing

    report = await migrate_keys(stack.client, ns)
    assert [vars(m) for m in report.moved] == [vars(m) for m in dry.moved]
    assert not report.conflicts and not report.skipped and report.current == 0
    vt = stack.registry.backend.vector_tag
    assert report.counts() == {
        **{f"coach:{kind}": 2 for kind in KINDS}, "session": 2, "session_threads": 2,
        "intervention_stats": 2, "feedback_summary": 2, "profile": 2, "current_state": 2,
        f"interventions:{vt}": 4, f"reflections:{vt}": 2, f"feedback:{vt}": 2,
    }
    after = await keyspace(stack)
    assert all("{" in k for k in after) and len(after) == len(before)
    # TTLs moved with the keys (interventions expire after 30 days, the applied set after 7).
    assert all(t > 0 for k, t in after.items() if ":interventions:" in k or ":coach:" in k)

    for user_id in PEOPLE:
        # Coaching store: the plan, what is scheduled, the last check-in, safety events, and the
        # idempotency keys (a replay of a write applied before the move still lands once).
        assert await store.plan(user_id) == plans[user_id]
        assert [i.text for i in await store.upcoming(user_id)] == ["the laundry", "take the meds"]
        assert await store.last_checkin_at(user_id) == T0 + 20
        assert [e.kind for e in await store.safety_events(user_id)] == ["medical"]
        assert await store.was_applied(user_id, "c1")
        plan, _ = await store.complete_steps(user_id, 1, key="c1")
        assert plan.current == 1  # replayed, not advanced
        # Session directory.
        current = await directory.current(user_id)
        assert current is not None and current.thread_id == written[user_id].threads[0]
        assert await directory.threads(user_id) == sorted(written[user_id].threads)
        # Memory layer: every element, found by the index under the new keys, nothing twice.
        interventions = element(stack, InterventionMemory)
        done, pending = written[user_id].ids["interventions"]
        assert [i.id for i in await interventions.pending(user_id)] == [pending]
        assert (await interventions.get(user_id, done)).outcome is Outcome.TASK_COMPLETED
        assert (await interventions.success_rates(user_id))["microsteps"].settled == 1
        assert await interventions.settle(user_id, pending, Outcome.RE_ENGAGED) is Outcome.PENDING
        assert (await interventions.success_rates(user_id))["breathing"].settled == 1
        hits = await interventions.similar_successes(user_id, "I can't start the dishes")
        assert hits and hits[0].intervention.id == done
        assert [r.id for r in await element(stack, ReflectionMemory).recent(user_id)] == \
            written[user_id].ids["reflections"]
        assert [f.id for f in await element(stack, FeedbackMemory).recent(user_id)] == \
            written[user_id].ids["feedback"]
        assert (await element(stack, FeedbackMemory).summary(user_id)).positives == ["kind"]
        assert (await element(stack, ProfileMemory).get(user_id)).name == "M"
        assert (await element(stack, CurrentStateMemory).get(user_id)).recent_wins == ["Did the dishes"]
        export = await stack.registry.export(user_id)
        assert {n: len(rows) for n, rows in export.items()} == {n: len(r) for n, r in exported[user_id].items()}
        assert all("{" in row["key"] for rows in export.values() for row in rows)

    # Running it again changes nothing.
    settled = await keyspace(stack)
    again = await migrate_keys(stack.client, ns)
    assert not again.moved and not again.conflicts and not again.skipped
    assert again.current == len(settled)
    assert await keyspace(stack) == settled

    # And forget still removes everything about a person (no old-layout leftovers).
    await stack.registry.forget("maya")
    await store.forget("maya")
    await directory.forget("maya", checkpointer=_NoCheckpoints())
    tag = "{" + user_tag("maya") + "}"
    assert not [k for k in await keyspace(stack) if tag in k or k.endswith(":maya")]


class _NoCheckpoints:
    async def adelete_thread(self, thread_id: str) -> None:
        return None


async def test_a_key_whose_new_name_exists_is_kept_and_reported(stack: MemoryStack) -> None:
    ns = stack.registry.backend.settings.namespace
    directory = SessionDirectory(stack.client, ns)
    await directory.start("maya")  # written by a newer process before the migration ran
    old = f"{ns}:session:maya"
    await stack.client.hset(old, mapping={"thread_id": "sold", "started_at": "1", "last_activity": "1"})
    for _ in range(2):
        report = await migrate_keys(stack.client, ns)
        assert not report.moved and [(m.old, m.new) for m in report.conflicts] == [(old, directory._key("maya"))]
    assert (await directory.current("maya")).thread_id != "sold"  # type: ignore[union-attr]
    assert await stack.client.exists(old)


async def test_keys_that_are_not_a_persons_are_left_alone(stack: MemoryStack) -> None:
    ns = stack.registry.backend.settings.namespace
    interventions = element(stack, InterventionMemory)
    strangers = {f"{ns}:session:not-a-tag": "x", f"{ns}:coach:plan:a:b": "x", f"{ns}:sessionx:maya": "x"}
    for key, value in strangers.items():
        await stack.client.set(key, value)
    await stack.client.hset(f"{interventions.index.prefix}:orphan", mapping={"text": "no owner"})
    report = await migrate_keys(stack.client, ns)
    assert not report.moved
    assert sorted(k for k, _ in report.skipped) == sorted([f"{ns}:session:not-a-tag",
                                                          f"{interventions.index.prefix}:orphan"])
    for key in strangers:
        assert await stack.client.exists(key)


def test_the_cli_reports_what_it_moves_and_is_idempotent(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    ns = memory_settings().namespace
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_MEMORY__NAMESPACE", ns)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    runner = CliRunner()
    client = redis.Redis.from_url(redis_url)
    try:
        empty = runner.invoke(app, ["redis", "migrate", "--dry-run", "--json"])
        assert empty.exit_code == 0, empty.output
        assert json.loads(empty.output)["moved"] == {}
        client.hset(f"{ns}:session:maya", mapping={"thread_id": "s1", "started_at": "1", "last_activity": "1"})
        client.sadd(f"{ns}:session_threads:maya", "s1")
        doctor = runner.invoke(app, ["doctor"])  # the doctor notices the old layout
        assert doctor.exit_code == 1 and re.search(r"Key layout\W+FAIL", doctor.output), doctor.output
        dry = json.loads(runner.invoke(app, ["redis", "migrate", "--dry-run", "--json"]).output)
        assert dry["dry_run"] and dry["moved"] == {"session": 1, "session_threads": 1}
        assert client.exists(f"{ns}:session:maya")  # a dry run moves nothing
        moved = runner.invoke(app, ["redis", "migrate"])
        assert moved.exit_code == 0, moved.output
        assert "2 keys moved" in moved.output and "session_threads" in moved.output
        assert client.hget(f"{ns}:session:{{maya}}", "thread_id") == b"s1"
        again = runner.invoke(app, ["redis", "migrate"])
        assert again.exit_code == 0 and "0 keys moved; 2 already in the new layout" in again.output
        doctor = runner.invoke(app, ["doctor"])
        assert doctor.exit_code == 0 and re.search(r"Key layout\W+pass", doctor.output), doctor.output
    finally:
        client.delete(f"{ns}:session:{{maya}}", f"{ns}:session_threads:{{maya}}")
        client.close()


def test_a_report_lists_moves_as_plain_data() -> None:
    report = KeyMigration(dry_run=True)
    assert report.as_dict() == {"dry_run": True, "moved": {}, "already_current": 0, "moves": [],
                                "conflicts": [], "skipped": []}
