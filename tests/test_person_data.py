"""The person's data in their hands (app/person_data.py, app/audit.py, the /api/data,
/api/memories, /api/profile, /api/interventions/{id}/outcome and /api/audit endpoints of
app/web/server.py): always the signed-in person's own, never another account's. Real server
(uvicorn), real Redis; the person's keys are counted by scanning for their hash tag."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from memories.current_state import CurrentStateMemory
from memories.interventions import InterventionMemory
from memories.keys import person_tag
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from tests import test_accounts
from tests.companion_fixtures import Rig, namespace_of
from tests.test_accounts import COOKIE, PASSWORD, sign_in, sign_up
from tests.test_voice_server import next_json
from tools.store import SafetyEvent

base = test_accounts.base  # the same signed-in-capable server fixture


def as_(session: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(cookies={COOKIE: session})


async def keys_of(rig: Rig, user: str) -> list[str]:
    """Every key in the test's namespace carrying the person's hash tag."""
    pattern = f"{namespace_of(rig.stack)}:*{person_tag(user)}*"
    return sorted([k.decode() async for k in rig.stack.client.scan_iter(match=pattern, count=1000)])


async def remember(rig: Rig, user: str, words: str) -> str:
    """Give ``user`` a profile, an intervention (pending, in their words), a plan and a reminder;
    returns the intervention's id."""
    registry = rig.stack.registry
    await registry.get(ProfileMemory).update(user, {"name": user.title(), "timezone": "Europe/Berlin"})  # type: ignore[union-attr]
    intervention = await registry.get(InterventionMemory).save(user, {  # type: ignore[union-attr]
        "text": "Let's start with one tiny step.", "tool_name": "break_down_task", "user_context": words})
    await rig.deps.store.save_plan(user, "tidy the desk", ["Clear one corner", "Wipe it"])
    await rig.deps.store.add_reminder(user, 2e9, "drink water")
    return intervention


async def test_unauthenticated_requests_get_401(base: str) -> None:
    async with httpx.AsyncClient() as http:
        answers = [await http.get(f"{base}/api/data"), await http.get(f"{base}/api/memories"),
                   await http.get(f"{base}/api/audit"),
                   await http.patch(f"{base}/api/profile", json={"name": "x"}),
                   await http.post(f"{base}/api/interventions/abc/outcome", json={"outcome": "task_completed"}),
                   await http.request("DELETE", f"{base}/api/data", json={"confirm": "x"})]
    async with as_("ana.forged") as http:
        answers.append(await http.get(f"{base}/api/data"))
    assert [a.status_code for a in answers] == [401] * 7


async def test_export_and_memories_hold_the_persons_own_words_only(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        ana = await sign_up(http, base, "ana")
        bob = await sign_up(http, base, "bob")
    await rig.session("ana").send("I keep putting off the laundry")  # a conversation, through the graph
    await remember(rig, "ana", "I can't start the tax forms, ana-marker")
    await remember(rig, "bob", "my inbox is a mess, bob-marker")
    async with as_(ana) as http:
        data = await http.get(f"{base}/api/data")
        shown = await http.get(f"{base}/api/memories")
    assert data.status_code == 200 and shown.status_code == 200
    text = data.text
    assert "ana-marker" in text and "bob-marker" not in text and "my inbox" not in text
    exported = data.json()
    assert exported["profile"][0]["name"] == "Ana" and exported["coaching"]["plan"]["task"] == "tidy the desk"
    assert exported["sessions"] and {"interventions", "reflections", "feedback", "current_state"} <= set(exported)
    memories = shown.json()
    assert memories["profile"]["timezone"] == "Europe/Berlin"
    contexts = [i["user_context"] for i in memories["interventions"]]
    assert "I can't start the tax forms, ana-marker" in contexts and not any("bob" in c for c in contexts)
    created = [i["created_at"] for i in memories["interventions"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert memories["plan"]["steps"] == ["Clear one corner", "Wipe it"]
    assert "drink water" in [s["text"] for s in memories["scheduled"]] and memories["safety_events"] == []
    async with as_(bob) as http:
        assert "ana-marker" not in (await http.get(f"{base}/api/data")).text
        assert "ana-marker" not in (await http.get(f"{base}/api/memories")).text


async def test_editing_the_profile_and_its_consents(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        ana = await sign_up(http, base, "ana")
    async with as_(ana) as http:
        edited = await http.patch(f"{base}/api/profile", json={
            "name": "Ana B", "diagnosis": "ADHD", "consent_diagnosis_in_prompts": True,
            "preferences": {"communication_style": "direct"}})
        bad = await http.patch(f"{base}/api/profile", json={"timezone": "Mars/Olympus"})
        unknown = await http.patch(f"{base}/api/profile", json={"password": "nope"})
        shown_before = (await http.get(f"{base}/api/memories")).json()["profile"]
        off = await http.patch(f"{base}/api/profile", json={"consent_pooled_learning": False})
        shown_after = (await http.get(f"{base}/api/memories")).json()["profile"]
    assert edited.status_code == 200, edited.text
    profile = edited.json()
    assert profile["name"] == "Ana B" and profile["consent_diagnosis_in_prompts"] is True
    assert profile["consent_pooled_learning"] is True  # on unless the person turns it off
    assert profile["preferences"]["communication_style"] == "direct"
    assert bad.status_code == 422 and unknown.status_code == 422
    # Turning it off sticks: the PATCH answers with it off, and so does what the page reads back.
    assert shown_before["consent_pooled_learning"] is True
    assert off.status_code == 200, off.text
    assert off.json()["consent_pooled_learning"] is False and off.json()["name"] == "Ana B"
    assert shown_after["consent_pooled_learning"] is False and shown_after["name"] == "Ana B"
    stored = await rig.stack.registry.get(ProfileMemory).get("ana")  # type: ignore[union-attr]
    assert stored is not None and stored.name == "Ana B" and stored.diagnosis.value == "ADHD"
    assert stored.consent_pooled_learning is False


async def test_correcting_an_outcome_moves_the_success_counters(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        ana = await sign_up(http, base, "ana")
        bob = await sign_up(http, base, "bob")
    interventions = rig.stack.registry.get(InterventionMemory)
    assert interventions is not None
    first = await remember(rig, "ana", "the dishes are piling up")
    await interventions.settle("ana", first, Outcome.ABANDONED)
    before = (await interventions.success_rates("ana"))["break_down_task"]
    async with as_(ana) as http:
        fixed = await http.post(f"{base}/api/interventions/{first}/outcome", json={"outcome": "task_completed"})
        nothing = await http.post(f"{base}/api/interventions/{'0' * 32}/outcome", json={"outcome": "task_completed"})
        junk = await http.post(f"{base}/api/interventions/{first}/outcome", json={"outcome": "great"})
    async with as_(bob) as http:
        stolen = await http.post(f"{base}/api/interventions/{first}/outcome", json={"outcome": "distracted"})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["previous"] == "abandoned" and fixed.json()["intervention"]["outcome"] == "task_completed"
    assert nothing.status_code == 404 and junk.status_code == 422 and stolen.status_code == 404
    assert (await interventions.get("ana", first)).outcome is Outcome.TASK_COMPLETED
    after = (await interventions.success_rates("ana"))["break_down_task"]
    assert after.settled == before.settled == 1
    assert before.value_sum == pytest.approx(0.0) and after.value_sum == pytest.approx(1.0)
    assert after.success_rate > before.success_rate
    assert await interventions.success_rates("bob") == {}  # Bob's try changed nothing of his or hers


async def test_forget_me_deletes_every_key_of_the_person_and_the_cookie(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        ana = await sign_up(http, base, "ana")
        bob = await sign_up(http, base, "bob")
    other = str((await sign_in(base, "ana")).cookies[COOKIE])  # a second browser of Ana's
    settled = await remember(rig, "ana", "ana-marker")
    await remember(rig, "bob", "bob-marker")
    registry = rig.stack.registry
    await registry.get(InterventionMemory).settle("ana", settled, Outcome.TASK_PROGRESS)  # type: ignore[union-attr]
    await registry.get(ReflectionMemory).remember("ana", {"insight": "Body doubling helps ana"})  # type: ignore[union-attr]
    await registry.get(CurrentStateMemory).add_win("ana", "cleared one corner")  # type: ignore[union-attr]
    await rig.deps.store.record_safety_event("ana", SafetyEvent(kind="medical", at=1.0))
    assert (await sign_in(base, "ana", "wrong password")).status_code == 401  # a failed sign-in counter
    session = rig.session("ana")
    await session.send("I keep putting off the laundry")
    await session.end()
    async with websockets.connect(f"ws://{base.removeprefix('http://')}/ws",
                                  additional_headers={"Cookie": f"{COOKIE}={ana}"}) as ws:  # a live-window claim
        await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
        await next_json(ws, "ready")
    async with as_(ana) as http:
        await http.patch(f"{base}/api/profile", json={"consent_pooled_learning": True})
        threads = (await http.get(f"{base}/api/data")).json()["sessions"]
    bob_keys = await keys_of(rig, "bob")
    ana_keys = await keys_of(rig, "ana")
    kinds = {key.split(":")[1] for key in ana_keys}
    assert {"account", "audit", "coach", "current_state", "intervention_stats", "interventions", "profile",
            "reflections", "session_threads", "signin_fail", "voice_live", "websession",
            "websessions"} <= kinds, ana_keys
    assert threads and bob_keys
    async with as_(ana) as http:
        missing = await http.request("DELETE", f"{base}/api/data")
        wrong = await http.request("DELETE", f"{base}/api/data", json={"confirm": "bob"})
    async with as_(bob) as http:
        by_bob = await http.request("DELETE", f"{base}/api/data", json={"confirm": "ana"})
    assert missing.status_code == wrong.status_code == by_bob.status_code == 400
    assert await keys_of(rig, "ana") == ana_keys  # nothing deleted
    async with as_(ana) as http:
        gone = await http.request("DELETE", f"{base}/api/data", json={"confirm": "ana"})
    assert gone.status_code == 200, gone.text
    assert gone.json()["deleted"]["sessions"] == len(threads) and gone.json()["deleted"]["account"] >= 3
    assert await keys_of(rig, "ana") == []
    assert await keys_of(rig, "bob") == bob_keys  # the other person's keys untouched
    checkpointer = rig.graph.checkpointer
    for thread in threads:  # the conversations' checkpoints are gone too
        assert await checkpointer.aget_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}) is None
    for cookie in (ana, other):
        async with as_(cookie) as http:
            assert (await http.get(f"{base}/api/me")).status_code == 401
            assert (await http.get(f"{base}/api/data")).status_code == 401
    assert (await sign_in(base, "ana")).status_code == 401  # the account is gone
    async with httpx.AsyncClient() as http:  # and the name can start afresh, with nothing remembered
        again = await sign_up(http, base, "ana", "a new password")
    async with as_(again) as http:
        fresh = (await http.get(f"{base}/api/memories")).json()
        trail = (await http.get(f"{base}/api/audit")).json()["events"]
    assert fresh["profile"] is None and fresh["interventions"] == [] and fresh["plan"] is None
    assert [e["kind"] for e in trail] == ["sign_up"]
    async with as_(bob) as http:
        assert "bob-marker" in (await http.get(f"{base}/api/data")).text


async def test_the_audit_log_records_what_was_done_newest_first(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        await sign_up(http, base, "ana")
    for _ in range(2):  # someone guessing: not written into Ana's log, but told to her when she signs in
        assert (await sign_in(base, "ana", "wrong password")).status_code == 401
    await asyncio.sleep(1.1)  # the first lockout (1 s) passes
    signed_in = await sign_in(base, "ana")
    ana = str(signed_in.cookies[COOKIE])
    first = await remember(rig, "ana", "ana-marker")
    async with as_(ana) as http:
        await http.get(f"{base}/api/data")
        await http.patch(f"{base}/api/profile", json={"locale": "de-DE"})
        await http.post(f"{base}/api/interventions/{first}/outcome", json={"outcome": "re_engaged"})
        await http.post(f"{base}/api/password", json={"current_password": PASSWORD, "new_password": "another one!"})
        await http.request("DELETE", f"{base}/api/data", json={"confirm": "nope"})
        trail = await http.get(f"{base}/api/audit")
    async with httpx.AsyncClient() as http:
        bob = await sign_up(http, base, "bob")
    async with as_(bob) as http:
        bobs = (await http.get(f"{base}/api/audit")).json()["events"]
    assert trail.status_code == 200
    events: list[dict[str, Any]] = trail.json()["events"]
    assert [e["kind"] for e in events] == ["password_change", "outcome_correction", "profile_edit", "export",
                                           "sign_in", "sign_up"]
    assert all(e["address"] == "127.0.0.1" and e["at"] > 0 for e in events)
    assert events[1]["detail"] == {"intervention": first, "previous": "pending", "outcome": "re_engaged"}
    assert events[2]["detail"] == {"fields": "locale"} and events[4]["detail"] == {"method": "password",
                                                                                    "failed_before": "2"}
    assert PASSWORD not in trail.text and "another one!" not in trail.text
    assert [e["kind"] for e in bobs] == ["sign_up"]
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
