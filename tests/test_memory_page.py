"""The "What I remember about you" part of the voice page (app/web/), in headless Chromium against
the real server (create_app) and real Redis: sign-up and a refused wrong password, the person's own
seeded words shown, the profile edited, an outcome corrected, everything downloaded, the audit log,
a second account seeing none of the first one's words, sign-out revoking the session, and "forget me".

Two Chromium sessions in all; the page is driven in a worker thread (``asyncio.to_thread``) while the
server runs on the test's event loop, and checked between steps through the API and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from app.accounts import SIGNIN_FAILED
from memories.current_state import CurrentStateMemory
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from tests import browser, test_accounts
from tests.browser import chromium_available, silent_mic_driver, wait_for
from tests.companion_fixtures import Rig
from tests.test_accounts import COOKIE, PASSWORD, me
from tests.test_person_data import keys_of, remember
from tools.store import SafetyEvent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not chromium_available(), reason="Debian chromium + chromium-driver not installed")]

base = test_accounts.base  # the real server, live mode on the fake Live service
SCREENSHOT = Path("/tmp/memory_page.png")
T = TypeVar("T")


# ---- the page, from the worker thread ----------------------------------------------------------

def silent_browser(work: Path) -> WebDriver:
    """A headless Chromium whose microphone is one second of silence (nothing here talks)."""
    driver = silent_mic_driver(work)
    # Test hook outside the page (CDP scripts are not bound by its CSP): keep the page's sockets
    # reachable, to send a bad frame on one or hand the page a frame or close the server would send.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.testSockets = [];
        const Real = window.WebSocket;
        window.WebSocket = class extends Real {
          constructor(...args) { super(...args); window.testSockets.push(this); }
        };"""})
    return driver


def by_testid(driver: WebDriver | WebElement, testid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")


def shows(testid: str, words: str) -> str:
    """A JS condition: the element is visible and contains ``words``."""
    el = f"document.querySelector('[data-testid={testid}]')"
    return f"{el} && {el}.offsetParent !== null && {el}.textContent.includes({json.dumps(words)})"


def type_into(driver: WebDriver, testid: str, text: str) -> None:
    field = by_testid(driver, testid)
    field.clear()
    field.send_keys(text)


def signed_out(driver: WebDriver) -> None:
    """Click Sign out and wait for the sign-in form."""
    by_testid(driver, "signout-button").click()
    wait_for(driver, "document.querySelector('[data-testid=name-input]').offsetParent !== null", 10)


def open_memory(driver: WebDriver) -> str:
    """Open "What I remember about you", wait until it loaded; its visible text."""
    if not driver.execute_script("return document.querySelector('[data-testid=memory-section]').open"):
        summary = by_testid(driver, "memory-summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()
    wait_for(driver, "document.querySelector('[data-testid=memory-section]').dataset.state === 'loaded'", 10)
    return str(by_testid(driver, "memory-section").text)


def screenshot(driver: WebDriver, element: WebElement, path: Path) -> None:
    """The whole element as a PNG, also the part below the window."""
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                 "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};",
                                 element)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": {**rect, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def session_cookie(driver: WebDriver) -> str:
    cookie = driver.get_cookie(COOKIE)
    assert cookie is not None, "the page is not signed in"
    return str(cookie["value"])


def intervention_item(driver: WebDriver, intervention: str) -> str:
    return f"document.querySelector('[data-testid=memory-intervention][data-id=\"{intervention}\"]')"


async def on_page(step: Callable[..., T], *args: Any) -> T:
    """Run one browser step in a worker thread (the server keeps serving on this loop)."""
    return await asyncio.to_thread(step, *args)


async def seed(rig: Rig, user: str, words: str) -> str:
    """A profile, an intervention that was abandoned (in the person's words), a reflection, a win, a
    plan, a reminder and a safety event; returns the intervention's id."""
    registry = rig.stack.registry
    intervention = await remember(rig, user, f"I can't start the tax forms, {words}")
    await registry.get(InterventionMemory).settle(user, intervention, Outcome.ABANDONED)  # type: ignore[union-attr]
    await registry.get(ReflectionMemory).remember(user, {"insight": f"Body doubling helps, {words}"})  # type: ignore[union-attr]
    await registry.get(CurrentStateMemory).add_win(user, f"cleared one corner, {words}")  # type: ignore[union-attr]
    await rig.deps.store.record_safety_event(user, SafetyEvent(kind="medical", at=time.time() - 3600))
    return intervention


async def memories_of(base: str, cookie: str) -> dict[str, Any]:
    async with httpx.AsyncClient(cookies={COOKIE: cookie}) as http:
        answer = await http.get(f"{base}/api/memories")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ---- 1-3: sign-up, the memory section, edits, corrections, export and the audit log ------------

def sign_up_and_refuse_a_wrong_password(driver: WebDriver, base: str) -> dict[str, Any]:
    browser.sign_in(driver, base, "ana", PASSWORD, signup=True)
    signed_up_as = by_testid(driver, "who").text
    signed_out(driver)
    by_testid(driver, "mode-signin").click()
    type_into(driver, "name-input", "ana")
    type_into(driver, "password-input", "not the password")
    by_testid(driver, "signin-button").click()
    wait_for(driver, shows("error-text", SIGNIN_FAILED), 10)
    refused = {"session_hidden": driver.execute_script("return document.querySelector('[data-testid=session]').hidden"),
               "cookie": driver.get_cookie(COOKIE)}
    browser.sign_in(driver, base, "ana", PASSWORD, signup=False)
    return {"signed_up_as": signed_up_as, **refused}


def edit_the_profile(driver: WebDriver) -> str:
    type_into(driver, "profile-timezone-input", "Mars/Olympus")  # refused, in plain words
    by_testid(driver, "profile-save").click()
    wait_for(driver, shows("profile-note", "I don't know that time zone"), 10)
    type_into(driver, "profile-timezone-input", "Europe/Berlin")
    type_into(driver, "profile-name-input", "Ana B")
    assert by_testid(driver, "consent-pooled-toggle").is_selected()  # helping people like her is on by default...
    by_testid(driver, "consent-pooled-toggle").click()  # ...and she turns it off
    by_testid(driver, "profile-save").click()
    wait_for(driver, shows("profile-note", "Saved"), 10)
    return str(by_testid(driver, "profile-note").text)


def correct_the_outcome(driver: WebDriver, intervention: str) -> dict[str, str]:
    item = driver.find_element(By.CSS_SELECTOR, f"[data-testid=memory-intervention][data-id='{intervention}']")
    Select(by_testid(item, "outcome-select")).select_by_value("task_completed")
    by_testid(item, "outcome-save").click()
    wait_for(driver, f"{intervention_item(driver, intervention)}.dataset.outcome === 'task_completed'", 10)
    wait_for(driver, shows("outcome-note", "changed"), 10)
    item = driver.find_element(By.CSS_SELECTOR, f"[data-testid=memory-intervention][data-id='{intervention}']")
    return {"outcome": by_testid(item, "intervention-outcome").text,
            "rate": driver.find_element(By.CSS_SELECTOR, "[data-testid=memory-rate][data-tool=break_down_task]").text}


def download_everything(driver: WebDriver, downloads: Path) -> dict[str, Any]:
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    by_testid(driver, "download-button").click()
    target = downloads / "sam2voice-ana.json"
    deadline = time.monotonic() + 10
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.is_file(), f"no download; the folder has {sorted(p.name for p in downloads.iterdir())}"
    wait_for(driver, shows("download-note", "sam2voice-ana.json"), 5)
    wait_for(driver, "document.querySelector('[data-testid=audit-event][data-kind=export]')", 10)
    audit = [(li.get_attribute("data-kind"), li.text)
             for li in driver.find_elements(By.CSS_SELECTOR, "[data-testid=audit-event]")]
    screenshot(driver, by_testid(driver, "memory-section"), SCREENSHOT)  # for a person to look at
    return {"file": target.read_text(), "audit": audit}


SOCKET = "window.testSockets[window.testSockets.length - 1]"


def socket_troubles(driver: WebDriver) -> dict[str, str]:
    """What the page says for a bad frame (really sent), busy and rate_limited error frames and an
    idle close (4408) (handed to its socket as the server would send them); then Connect again."""
    said = {}
    driver.execute_script("document.querySelector('[data-testid=error-dismiss]').click();"
                          f"{SOCKET}.send(new Uint8Array(3));")  # an odd number of audio bytes
    wait_for(driver, "window.sam2voiceStats.messages.some((m) => m.code === 'bad_frame')", 10)
    said["bad_frame"] = by_testid(driver, "error-text").text
    for code in ("busy", "rate_limited"):
        frame = json.dumps({"type": "error", "code": code, "message": "server words"})
        driver.execute_script(f"{SOCKET}.dispatchEvent(new MessageEvent('message', {{data: arguments[0]}}))", frame)
        said[code] = by_testid(driver, "error-text").text
    driver.execute_script(f"{SOCKET}.dispatchEvent(new CloseEvent('close', {{code: 4408}}))")
    said["4408"] = by_testid(driver, "error-text").text
    reconnect = by_testid(driver, "reconnect-button")
    said["reconnect_shown"] = str(reconnect.is_displayed())
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", reconnect)
    ready = "window.sam2voiceStats.messages.filter((m) => m.type === 'ready').length"
    before = driver.execute_script(f"return {ready}")
    reconnect.click()
    wait_for(driver, f"{ready} > {before} && !document.querySelector('[data-testid=type-input]').disabled", 10)
    return said


WHY_LINES = ("helped you ", "helps most people in moments like this", "helps some people in moments like this",
             "usually suits a moment like this", "trying something new", "trying it once more")


def a_typed_struggle(driver: WebDriver) -> dict[str, str]:
    """Type a struggle; what the turn's "Drew on N memories" details say (its summary, and the
    suggestion with why, read as textContent: the details stay closed until the person opens them)."""
    box = by_testid(driver, "type-input")
    box.send_keys("i cant start my essay")
    by_testid(driver, "type-send").click()
    why = "document.querySelector('[data-testid=memories-why]')"
    wait_for(driver, f"{why} && {why}.textContent.length > 0", 20)
    return {key: str(driver.execute_script(f"return document.querySelector('[data-testid={key}]').textContent"))
            for key in ("memories-summary", "memories-why")}


async def test_the_memory_section_shows_edits_corrects_and_exports(base: str, rig: Rig, tmp_path: Path) -> None:
    driver = await on_page(silent_browser, tmp_path)
    try:
        # 1. Sign up with a password; a wrong password later is refused and does not sign in.
        first = await on_page(sign_up_and_refuse_a_wrong_password, driver, base)
        assert first["signed_up_as"] == "ana"
        assert first["session_hidden"] and first["cookie"] is None
        cookie = await on_page(session_cookie, driver)

        # 2. The person's own (seeded) words, shown when the section is opened.
        intervention = await seed(rig, "ana", "ana-marker")
        closed = await on_page(driver.execute_script,
                               "return !document.querySelector('[data-testid=memory-section]').open")
        assert closed  # until the person opens it
        shown = await on_page(open_memory, driver)
        for words in ("I can't start the tax forms, ana-marker", "Let's start with one tiny step.",
                      "Body doubling helps, ana-marker", "cleared one corner, ana-marker", "tidy the desk",
                      "Clear one corner", "drink water", "a medical emergency", "It didn't help: I stopped"):
            assert words in shown, words
        assert await on_page(driver.execute_script,
                             "return document.querySelector('[data-testid=profile-timezone-input]').value") \
            == "Europe/Berlin"

        # The profile: a new name and one consent; the other fields stay as they were.
        assert "Saved" in await on_page(edit_the_profile, driver)
        profile = await rig.stack.registry.get(ProfileMemory).get("ana")  # type: ignore[union-attr]
        assert profile is not None and profile.name == "Ana B" and profile.consent_pooled_learning is False
        assert profile.consent_diagnosis_in_prompts is False and profile.timezone == "Europe/Berlin"

        # "Actually that helped": the outcome and the success counters move.
        before = (await memories_of(base, cookie))["success_rates"]["break_down_task"]
        corrected = await on_page(correct_the_outcome, driver, intervention)
        assert corrected["outcome"] == "It helped: I finished" and "100% helpful" in corrected["rate"]
        after = await memories_of(base, cookie)
        assert [i["outcome"] for i in after["interventions"] if i["id"] == intervention] == ["task_completed"]
        rates = after["success_rates"]["break_down_task"]
        assert before["settled"] == rates["settled"] == 1
        assert before["value_sum"] == pytest.approx(0.0) and rates["value_sum"] == pytest.approx(1.0)

        # 3. Download everything: the file holds the person's words; the audit list shows it, readably.
        exported = await on_page(download_everything, driver, tmp_path / "downloads")
        data = json.loads(exported["file"])
        assert "ana-marker" in exported["file"] and data["profile"][0]["name"] == "Ana B"
        assert data["coaching"]["plan"]["task"] == "tidy the desk"
        kinds = [kind for kind, _ in exported["audit"]]
        assert kinds[0] == "export" and {"outcome_correction", "profile_edit", "sign_in", "sign_up"} <= set(kinds)
        words = dict(exported["audit"])
        assert "Downloaded everything" in words["export"] and "from 127.0.0.1" in words["export"]
        assert "now “It helped: I finished”" in words["outcome_correction"]
        assert "Changed the profile: helping people like you, name" in words["profile_edit"]

        # Socket troubles in kind, specific words (docs/voice-protocol.md error codes).
        said = await on_page(socket_troubles, driver)
        assert "garbled" in said["bad_frame"]
        assert said["busy"].startswith("I'm still answering your last message")
        assert "a lot at once" in said["rate_limited"] and "server words" not in said["rate_limited"]
        assert said["4408"] == "I closed the connection after a quiet while. Press Connect again."
        assert said["reconnect_shown"] == "True"

        # A typed struggle: the turn's memories say what is suggested and why, in words for her.
        drew = await on_page(a_typed_struggle, driver)
        assert drew["memories-summary"].startswith("Drew on "), drew
        suggested, _, why = drew["memories-why"].partition(" — ")
        assert suggested.startswith("Suggested: ") and why.startswith(WHY_LINES), drew
    finally:
        await on_page(driver.quit)


# ---- 4-6: another account sees nothing; sign-out revokes; forget me ------------------------------

def second_account_looks(driver: WebDriver, base: str) -> dict[str, Any]:
    browser.sign_in(driver, base, "ana", PASSWORD, signup=False)
    ana_sees = open_memory(driver)
    ana_cookie = session_cookie(driver)
    signed_out(driver)
    after_signout = str(driver.page_source)
    browser.sign_in(driver, base, "bob", PASSWORD, signup=True)
    bob_sees = open_memory(driver)
    return {"ana_sees": ana_sees, "ana_cookie": ana_cookie, "after_signout": after_signout, "bob_sees": bob_sees,
            "bob_page": str(driver.page_source), "bob_cookie": session_cookie(driver)}


def back_as_ana(driver: WebDriver, base: str) -> str:
    signed_out(driver)
    browser.sign_in(driver, base, "ana", PASSWORD, signup=False)
    return open_memory(driver)


def forget_with_the_wrong_name(driver: WebDriver) -> dict[str, Any]:
    by_testid(driver, "forget-start-button").click()
    type_into(driver, "forget-name-input", "bob")
    by_testid(driver, "forget-confirm-button").click()
    wait_for(driver, shows("forget-note", "Nothing was deleted"), 10)
    return {"note": by_testid(driver, "forget-note").text, "cookie": session_cookie(driver),
            "still_in": driver.execute_script("return !document.querySelector('[data-testid=session]').hidden")}


def forget_with_the_right_name(driver: WebDriver) -> dict[str, Any]:
    type_into(driver, "forget-name-input", "ana")
    by_testid(driver, "forget-confirm-button").click()
    wait_for(driver, shows("signin-note", "deleted"), 10)
    time.sleep(0.3)  # a late socket close must not add an error on top
    return {"note": by_testid(driver, "signin-note").text,
            "error_hidden": driver.execute_script("return document.querySelector('[data-testid=error]').hidden"),
            "signup_offered": driver.execute_script(
                "return document.querySelector('[data-testid=mode-signup]').checked"),
            "page": str(driver.page_source)}


async def test_another_account_sees_nothing_and_forget_me_deletes_everything(base: str, rig: Rig,
                                                                             tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        await test_accounts.sign_up(http, base, "ana")
    await seed(rig, "ana", "ana-marker")
    driver = await on_page(silent_browser, tmp_path)
    try:
        # 4. Ana sees her words; after she signs out, Bob (same browser) sees none of them.
        looked = await on_page(second_account_looks, driver, base)
        assert "ana-marker" in looked["ana_sees"]
        assert "ana-marker" not in looked["after_signout"]  # signing out cleared the section
        assert "ana-marker" not in looked["bob_page"] and "tax forms" not in looked["bob_page"]
        assert "No plan right now." in looked["bob_sees"] and "Nothing planned." in looked["bob_sees"]
        # 6. Sign-out revoked Ana's session at once (the server closing its socket: test_accounts.py).
        assert (await me(base, looked["ana_cookie"])).status_code == 401
        assert (await me(base, looked["bob_cookie"])).json()["user"] == "bob"

        # 5. Forget me: the wrong name is refused in the server's words, and nothing is deleted.
        assert "ana-marker" in await on_page(back_as_ana, driver, base)
        ana_keys = await keys_of(rig, "ana")
        bob_keys = await keys_of(rig, "bob")
        assert ana_keys and bob_keys
        wrong = await on_page(forget_with_the_wrong_name, driver)
        assert "type your name exactly" in wrong["note"] and wrong["still_in"]
        assert await keys_of(rig, "ana") == ana_keys
        # The right name: back on the sign-in screen, the cookie dead, every key of Ana's gone.
        gone = await on_page(forget_with_the_right_name, driver)
        assert "Everything about you was deleted" in gone["note"]
        assert gone["error_hidden"] and gone["signup_offered"] and "ana-marker" not in gone["page"]
        assert (await me(base, wrong["cookie"])).status_code == 401
        assert await keys_of(rig, "ana") == []
        assert await keys_of(rig, "bob") == bob_keys
    finally:
        await on_page(driver.quit)
