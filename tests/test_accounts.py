"""Accounts with real credentials (app/accounts.py, the /api endpoints of app/web/server.py): sign-up,
sign-in, one error for a wrong password and an unknown name, rate limits with growing lockouts,
server-side sessions that sign-out revokes at once (closing the open voice socket), sign-out
everywhere, password change, and the old name-only attack. Real server (uvicorn), real Redis."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from google import genai
from redis.crc import key_slot
from selenium.webdriver.common.by import By
from typer.testing import CliRunner

from app.accounts import SIGNIN_FAILED, AccountStore, BadCredentials, RateLimit, TooManyAttempts
from app.cli import app as cli_app
from app.companion import Companion
from app.eval.fakes.live import FakeLiveServer
from app.settings import Settings
from app.web.server import create_app
from memories.keys import person_key
from tests.browser import chromium_available, silent_mic_driver, wait_for
from tests.companion_fixtures import Rig
from tests.test_voice_server import next_json, serving, voice_socket

PASSWORD = "correct horse battery"
COOKIE = "sam2voice_session"


@pytest.fixture
async def base(rig: Rig, fake: FakeLiveServer) -> AsyncIterator[str]:
    client = genai.Client(api_key="fake-key", http_options=fake.http_options())
    app = create_app(Settings(), companion=Companion(deps=rig.deps, graph=rig.graph), client=client, mode="live")
    async with serving(app) as address:
        yield f"http://{address}"


async def sign_up(http: httpx.AsyncClient, base: str, name: str, password: str = PASSWORD) -> str:
    answer = await http.post(f"{base}/api/signup", json={"name": name, "password": password})
    assert answer.status_code == 201, answer.text
    return str(answer.cookies[COOKIE])


async def sign_in(base: str, name: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{base}/api/signin", json={"name": name, "password": password})


async def me(base: str, session: str | None) -> httpx.Response:
    async with httpx.AsyncClient(cookies={COOKIE: session} if session else None) as http:
        return await http.get(f"{base}/api/me")


def ws_base(base: str) -> str:
    return base.removeprefix("http://")


async def ready_socket(base: str, session: str) -> Any:
    ws = await voice_socket(ws_base(base), session).__aenter__()
    await ws.send(json.dumps({"type": "hello", "sample_rate": 16000}))
    return ws, await next_json(ws, "ready")


async def closed_code(ws: Any, timeout: float = 5.0) -> int | None:
    """Read until the server closes the socket; its close code."""
    async def drain() -> int | None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    return await asyncio.wait_for(drain(), timeout)


async def test_sign_up_then_sign_in_with_the_password(base: str) -> None:
    async with httpx.AsyncClient() as http:
        session = await sign_up(http, base, "ana")
        again = await http.post(f"{base}/api/signup", json={"name": "ana", "password": "another password"})
        short = await http.post(f"{base}/api/signup", json={"name": "bo", "password": "short"})
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert short.status_code == 422 and "8 characters" in short.json()["detail"]
    assert (await me(base, session)).json() == {"user": "ana", "mode": "live", "has_password": True, "passkeys": 0}
    signed_in = await sign_in(base, "ana")
    assert signed_in.status_code == 200 and signed_in.json()["user"] == "ana"
    second = str(signed_in.cookies[COOKIE])
    assert second != session and (await me(base, second)).json()["user"] == "ana"
    assert (await me(base, None)).status_code == 401


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(base: str) -> None:
    async with httpx.AsyncClient() as http:
        await sign_up(http, base, "ana")
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    answers = {}
    for _ in range(3):
        for kind, name in (("wrong", "ana"), ("unknown", "nobody-here")):
            started = time.perf_counter()
            answers[kind] = await sign_in(base, name, "not the password")
            timings[kind].append(time.perf_counter() - started)
    assert answers["wrong"].status_code == answers["unknown"].status_code == 401
    assert answers["wrong"].json() == answers["unknown"].json() == {"detail": SIGNIN_FAILED}
    # Both hash a password (the unknown name a dummy one): neither answers much faster.
    wrong, unknown = statistics.median(timings["wrong"]), statistics.median(timings["unknown"])
    assert 0.33 < unknown / wrong < 3, timings


async def test_failed_sign_ins_lock_the_name_out_with_a_clear_message(base: str) -> None:
    async with httpx.AsyncClient() as http:
        await sign_up(http, base, "ana")
    for name in ("ana", "ghost"):  # a name without an account is locked out exactly the same way
        for _ in range(5):
            assert (await sign_in(base, name, "wrong password")).status_code == 401
        locked = await sign_in(base, name, PASSWORD)
        assert locked.status_code == 429, locked.text
        assert locked.headers["retry-after"] == "1" and "wait 1 seconds" in locked.json()["detail"]
    await asyncio.sleep(1.1)
    assert (await sign_in(base, "ana", PASSWORD)).status_code == 200  # and a success resets the count
    assert (await sign_in(base, "ana", "wrong password")).status_code == 401


async def test_lockouts_double_from_one_second_up_to_fifteen_minutes(rig: Rig) -> None:
    now = [1_000_000.0]
    store = AccountStore(rig.stack.client, rig.stack.registry.backend.settings.namespace, clock=lambda: now[0],
                         address_limit=RateLimit(free_failures=1000))
    await store.sign_up("ana", PASSWORD)
    failures, waits = 0, []
    while len(waits) < 12:
        try:
            await store.sign_in("ana", "wrong password", address="10.0.0.1")
        except BadCredentials:
            failures += 1
        except TooManyAttempts as locked:  # a locked attempt is not checked (nor counted)
            waits.append(locked.retry_after)
            with pytest.raises(TooManyAttempts):  # not even with the right password
                await store.sign_in("ana", PASSWORD, address="10.0.0.1")
            now[0] += locked.retry_after  # wait it out, then fail again
    assert failures == 5 + 11  # the 5th failure started the lockout
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert "15 minutes" in TooManyAttempts(900).message
    # Many names from one address: the address is locked out too (after 20 failures).
    per_address = AccountStore(rig.stack.client, rig.stack.registry.backend.settings.namespace, clock=lambda: now[0])
    for i in range(20):
        with pytest.raises(BadCredentials):
            await per_address.sign_in(f"guess{i}", "wrong password", address="10.9.9.9")
    with pytest.raises(TooManyAttempts):
        await per_address.sign_in("guess-new", "wrong password", address="10.9.9.9")
    await store.sign_in("ana", PASSWORD, address="10.0.0.2")  # from elsewhere, after the lockout: fine


async def test_sign_out_revokes_the_cookie_and_closes_the_open_socket(base: str) -> None:
    async with httpx.AsyncClient() as http:
        session = await sign_up(http, base, "ana")
    ws, ready = await ready_socket(base, session)
    assert ready["user"] == "ana"
    async with httpx.AsyncClient(cookies={COOKIE: session}) as http:
        out = await http.post(f"{base}/api/signout")
    assert out.status_code == 200 and out.json()["revoked"] == 1
    assert f'{COOKIE}=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    assert (await next_json(ws, "error"))["code"] == "signed_out"
    assert await closed_code(ws) == 4401
    assert (await me(base, session)).status_code == 401
    async with voice_socket(ws_base(base), session) as again:
        assert (await next_json(again, "error"))["code"] == "bad_session"
        assert await closed_code(again) == 4401


async def test_sign_out_everywhere_revokes_every_session(base: str) -> None:
    async with httpx.AsyncClient() as http:
        first = await sign_up(http, base, "ana")
    second = str((await sign_in(base, "ana")).cookies[COOKIE])
    ws, _ = await ready_socket(base, second)
    async with httpx.AsyncClient(cookies={COOKIE: first}) as http:
        out = await http.post(f"{base}/api/signout-everywhere")
    assert out.status_code == 200 and out.json()["revoked"] == 2
    assert await closed_code(ws) == 4401
    assert (await me(base, first)).status_code == 401 and (await me(base, second)).status_code == 401


async def test_a_second_account_cannot_use_the_first_ones_socket_or_data(base: str, rig: Rig) -> None:
    async with httpx.AsyncClient() as http:
        ana = await sign_up(http, base, "ana")
        bob = await sign_up(http, base, "bob")
    ana_ws, ready = await ready_socket(base, ana)
    bob_ws, bob_ready = await ready_socket(base, bob)
    assert ready["user"] == "ana" and bob_ready["user"] == "bob"
    # Bob's socket did not take over Ana's, and a cookie with Ana's tag but Bob's secret is refused.
    forged = "ana." + bob.split(".", 1)[1]
    assert (await me(base, forged)).status_code == 401
    async with voice_socket(ws_base(base), forged) as ws:
        assert (await next_json(ws, "error"))["code"] == "bad_session"
    await bob_ws.send(json.dumps({"type": "text", "text": "I need to clean my desk"}))
    await next_json(bob_ws, "transcript", timeout=15)
    await ana_ws.send(json.dumps({"type": "end"}))
    assert "reflection" in await next_json(ana_ws, "ended", timeout=15)
    await bob_ws.close()
    await ana_ws.close()
    assert (await me(base, bob)).json()["user"] == "bob"


async def test_typing_the_victims_name_no_longer_signs_in(base: str) -> None:
    async with httpx.AsyncClient() as http:
        await sign_up(http, base, "maya")
    async with httpx.AsyncClient() as attacker:
        old = await attacker.post(f"{base}/api/session", json={"name": "maya"})
        taken = await attacker.post(f"{base}/api/signup", json={"name": "maya", "password": "attacker password"})
        guess = await attacker.post(f"{base}/api/signin", json={"name": "maya", "password": "attacker password"})
        nothing = await attacker.get(f"{base}/api/me")
    assert old.status_code in (404, 405) and taken.status_code == 409 and guess.status_code == 401
    assert nothing.status_code == 401 and COOKIE not in guess.cookies
    async with websockets.connect(f"ws://{ws_base(base)}/ws?token=maya") as ws:
        assert (await next_json(ws, "error"))["code"] == "bad_session"
        assert await closed_code(ws) == 4401


async def test_changing_the_password(base: str) -> None:
    async with httpx.AsyncClient() as http:
        here = await sign_up(http, base, "ana")
    elsewhere = str((await sign_in(base, "ana")).cookies[COOKIE])
    async with httpx.AsyncClient(cookies={COOKIE: here}) as http:
        wrong = await http.post(f"{base}/api/password", json={"current_password": "nope nope",
                                                               "new_password": "a brand new one"})
        short = await http.post(f"{base}/api/password", json={"current_password": PASSWORD, "new_password": "x"})
        good = await http.post(f"{base}/api/password", json={"current_password": PASSWORD,
                                                              "new_password": "a brand new one"})
    assert wrong.status_code == 401 and short.status_code == 422
    assert good.status_code == 200 and good.json()["revoked"] == 1
    assert (await me(base, here)).status_code == 200  # this browser stays signed in
    assert (await me(base, elsewhere)).status_code == 401  # the others are signed out
    assert (await sign_in(base, "ana", PASSWORD)).status_code == 401
    assert (await sign_in(base, "ana", "a brand new one")).status_code == 200
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{base}/api/password", json={"current_password": "a brand new one",
                                                              "new_password": "whatever else"})).status_code == 401


async def test_passkey_ceremonies_start_for_localhost_and_refuse_junk(base: str) -> None:
    async with httpx.AsyncClient() as http:
        options = await http.post(f"{base}/api/passkey/register/options", json={"name": "pia"})
        signin = await http.post(f"{base}/api/passkey/signin/options")
        junk = await http.post(f"{base}/api/passkey/register/verify",
                               json={"challenge_id": options.json()["challenge_id"], "credential": {"id": "x"}})
        reused = await http.post(f"{base}/api/passkey/register/verify",
                                 json={"challenge_id": options.json()["challenge_id"], "credential": {"id": "x"}})
        junk_signin = await http.post(f"{base}/api/passkey/signin/verify",
                                      json={"challenge_id": signin.json()["challenge_id"],
                                            "credential": {"id": "x", "rawId": "x", "response": {"userHandle": "x"}}})
        nameless = await http.post(f"{base}/api/passkey/register/options", json={})
        await sign_up(http, base, "ana")
        taken = await http.post(f"{base}/api/passkey/register/options", json={"name": "ana"})
    created = options.json()["options"]
    assert options.status_code == 200 and created["rp"]["id"] == "localhost" and created["user"]["name"] == "pia"
    assert created["authenticatorSelection"]["residentKey"] == "required"
    assert signin.json()["options"]["rpId"] == "localhost"
    assert junk.status_code == 400 and "passkey" in junk.json()["detail"]
    assert reused.status_code == 400 and "ran out of time" in reused.json()["detail"]  # a challenge is used once
    assert junk_signin.status_code == 400
    assert nameless.status_code == 422 and taken.status_code == 409
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{base}/api/signin", json={"name": "pia", "password": PASSWORD})).status_code == 401


def test_serve_refuses_a_network_address_without_tls(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                                                     tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "without TLS" in result.output and "--behind-proxy" in result.output


def passkey_round_trip(base: str, work: Path) -> dict[str, Any]:
    """In headless Chromium with a virtual authenticator: sign up with a passkey, sign out, sign in with it."""
    driver = silent_mic_driver(work)
    try:
        driver.get(base + "/")
        driver.execute_cdp_cmd("WebAuthn.enable", {})
        authenticator = driver.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True}})["authenticatorId"]
        wait_for(driver, "document.body.dataset.auth === 'signed-out'", 10)
        driver.find_element(By.CSS_SELECTOR, "[data-testid=name-input]").send_keys("pia")
        driver.find_element(By.CSS_SELECTOR, "[data-testid=passkey-button]").click()  # sign-up with a passkey
        wait_for(driver, "window.sam2voiceStats.messages.some((m) => m.type === 'ready')", 15)
        signed_up = driver.find_element(By.CSS_SELECTOR, "[data-testid=who]").text
        stored = driver.execute_cdp_cmd("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]

        driver.find_element(By.CSS_SELECTOR, "[data-testid=signout-button]").click()
        wait_for(driver, "document.querySelector('[data-testid=name-input]').offsetParent !== null", 10)
        assert driver.execute_script("return document.querySelector('[data-testid=mode-signin]').checked")
        driver.refresh()  # a fresh page: nothing but the authenticator knows who this is
        wait_for(driver, "document.body.dataset.auth === 'signed-out'", 10)
        driver.find_element(By.CSS_SELECTOR, "[data-testid=passkey-button]").click()  # sign-in with it
        wait_for(driver, "window.sam2voiceStats.messages.some((m) => m.type === 'ready')", 15)
        me = driver.execute_async_script(
            "const done = arguments[0]; fetch('/api/me').then((r) => r.json()).then(done, (e) => done(String(e)));")
        return {"signed_up": signed_up, "stored": stored, "me": me,
                "signed_in": driver.find_element(By.CSS_SELECTOR, "[data-testid=who]").text}
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.skipif(not chromium_available(), reason="Debian chromium + chromium-driver not installed")
async def test_passkey_sign_up_and_sign_in_in_a_browser(base: str, tmp_path: Path) -> None:
    localhost = base.replace("127.0.0.1", "localhost")  # WebAuthn needs a name: rp.id "localhost"
    result = await asyncio.to_thread(passkey_round_trip, localhost, tmp_path)
    assert result["signed_up"] == "pia" and result["signed_in"] == "pia"
    assert len(result["stored"]) == 1 and result["stored"][0]["isResidentCredential"]
    assert result["me"] == {"user": "pia", "mode": "live", "has_password": False, "passkeys": 1}
    # A passkey-only account has no password to guess.
    assert (await sign_in(base, "pia", PASSWORD)).status_code == 401


async def test_off_localhost_the_cookie_is_secure_and_passkeys_use_the_hosts_name(rig: Rig,
                                                                                  fake: FakeLiveServer) -> None:
    client = genai.Client(api_key="fake-key", http_options=fake.http_options())
    app = create_app(Settings(allowed_origins="https://voice.example.org"),
                     companion=Companion(deps=rig.deps, graph=rig.graph), client=client, mode="live")
    async with serving(app) as address, httpx.AsyncClient(headers={"Host": "voice.example.org"}) as http:
        answer = await http.post(f"http://{address}/api/signup", json={"name": "ana", "password": PASSWORD})
        options = await http.post(f"http://{address}/api/passkey/register/options", json={"name": "pia"})
    assert answer.status_code == 201
    cookie = answer.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert options.json()["options"]["rp"]["id"] == "voice.example.org"


async def test_a_persons_account_and_session_keys_share_one_cluster_slot(rig: Rig) -> None:
    store = AccountStore(rig.stack.client, rig.stack.registry.backend.settings.namespace)
    for user in ("maya", "Ada Lovelace"):
        cookie = await store.open_session(user)
        tag, sid = cookie.split(".")
        keys = [store._account(user), store._passkeys(user), store._failures(user), store._sessions(tag),
                store._session(tag, sid)]
        assert {key_slot(key.encode()) for key in keys} == {key_slot(person_key("x", user_id=user).encode())}
        assert await store.session_user(cookie) == user
        assert await store.close_all_sessions(user) == [cookie] and await store.session_user(cookie) is None
