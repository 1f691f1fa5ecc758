"""The voice page (app/web/) in headless Chromium, against a small stub of the protocol server.

The stub speaks docs/voice-protocol.md just enough to drive the page: it signs people up and in
with a session cookie (any password of 8+ characters), closes a signed-out session's socket with 4401,
answers `hello` with `ready`, and after a second of real (non-silent) microphone audio sends
one scripted reply. Typed turns trigger the other scripted cases (a long reply that gets
interrupted, an error). The fake microphone is espeak-ng speech fed to Chromium as a WAV.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import chromium_available, fake_mic_driver, page_stats, sign_in, speech_wav, start_talking, wait_for
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian chromium + chromium-driver not installed")

WEB_DIR = Path(__file__).resolve().parents[1] / "app" / "web" / "static"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
LOUD_RMS = 300  # PCM16 units; digital silence from the fake mic is ~0, espeak speech is thousands
TONE_CHUNK = 2400  # samples per 100 ms at 24 kHz
ERROR_MESSAGE = "That message could not be read. Please try again."
REFLECTION = "You cleared the cups. Nice work."
#: The page mid-session, for a person to look at (not an assertion): docs/figures/page.png when run by hand.
SCREENSHOT = Path(os.environ.get("SAM2VOICE_PAGE_SCREENSHOT", "/tmp/sam2voice-page.png"))


COOKIE = "sam2voice_session"
PASSWORD = "a long enough password"


class Credentials(BaseModel):
    """Body of POST /api/signup and /api/signin."""

    name: str = Field(description="Who is signing in.")
    password: str = Field(description="Their password.")


@dataclass
class StubLog:
    """What the stub server saw; written by the server thread, read by the test."""

    sessions: dict[str, str] = field(default_factory=dict)
    ws_sessions: list[str] = field(default_factory=list)
    sockets: dict[str, WebSocket] = field(default_factory=dict)
    signed_out: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    audio_frames: int = 0
    loud_samples: int = 0
    bad_audio: list[int] = field(default_factory=list)


def tone(chunks: int) -> list[bytes]:
    """`chunks` x 100 ms of a soft 440 Hz tone, PCM16LE at 24 kHz."""
    t = np.arange(chunks * TONE_CHUNK) / 24000
    pcm = (0.2 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    return [pcm[i : i + 2 * TONE_CHUNK] for i in range(0, len(pcm), 2 * TONE_CHUNK)]


async def first_reply(ws: WebSocket) -> None:
    """The scripted answer to the spoken turn: transcript, memories, plan, voice."""
    await ws.send_json({"type": "status", "state": "thinking", "text": "Thinking about what you said."})
    await ws.send_json({"type": "transcript", "role": "user", "turn": 1, "text": "Let's clean", "final": False})
    await ws.send_json({"type": "transcript", "role": "user", "turn": 1, "text": "Let's clean my room.", "final": True})
    memories = [
        {"id": "m1", "tool": "suggest_break", "outcome": "re_engaged", "said": "Stretch for a minute, then cups."},
        {"id": "m2", "tool": "create_microsteps", "outcome": "completed", "said": "First the cups to the sink."},
    ]
    await ws.send_json({"type": "memory", "turn": 1, "memories": memories, "suggested": "create_microsteps",
                        "why": "helped you 4 of 5 times when you felt like this"})
    checkin = {"what": "See how the cups went", "due_at": time.time() + 600}
    await ws.send_json({"type": "plan", "step": "Put the cups in the sink", "next_checkin": checkin,
                        "task": "your room", "steps": ["Open the window", "Put the cups in the sink", "Make the bed"],
                        "current": 2, "done": False})
    await ws.send_json({"type": "status", "state": "speaking", "text": "Speaking."})
    for chunk in tone(5):
        await ws.send_bytes(chunk)
    await ws.send_json({"type": "transcript", "role": "assistant", "turn": 1, "text": "Sounds good.", "final": False})
    text = "Sounds good. Start with the cups."
    await ws.send_json({"type": "transcript", "role": "assistant", "turn": 1, "text": text, "final": True})


async def typed_reply(ws: WebSocket, text: str) -> None:
    """Typed turns pick the scripted case: an error, or a long reply the person talks over."""
    if text == "please fail":
        await ws.send_json({"type": "error", "code": "bad_message", "message": ERROR_MESSAGE})
        return
    await ws.send_json({"type": "transcript", "role": "user", "turn": 2, "text": text, "final": True})
    await ws.send_json({"type": "transcript", "role": "assistant", "turn": 2, "text": "Here is a long", "final": False})
    for chunk in tone(30):
        await ws.send_bytes(chunk)
    await asyncio.sleep(0.8)
    await ws.send_json({"type": "interrupted"})


def stub_app(log: StubLog) -> FastAPI:
    """A protocol stub serving the real page files."""
    app = FastAPI()

    def open_session(body: Credentials, response: Response) -> dict[str, Any]:
        if not NAME_PATTERN.match(body.name):
            raise HTTPException(422, "Names can use letters, numbers and . _ - @ only, up to 64 characters.")
        if len(body.password) < 8:
            raise HTTPException(401, "That name and password don't match an account.")
        session = secrets.token_urlsafe(16)
        log.sessions[session] = body.name
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return {"user": body.name, "mode": "offline", "has_password": True, "passkeys": 0}

    @app.post("/api/signup", status_code=201)
    async def sign_up(body: Credentials, response: Response) -> dict[str, Any]:
        return open_session(body, response)

    @app.post("/api/signin")
    async def sign_in(body: Credentials, response: Response) -> dict[str, Any]:
        return open_session(body, response)

    @app.get("/api/me")
    async def me(request: Request) -> dict[str, Any]:
        user = log.sessions.get(request.cookies.get(COOKIE, ""))
        if user is None:
            raise HTTPException(401, "Please sign in.")
        return {"user": user, "mode": "offline", "has_password": True, "passkeys": 0}

    @app.post("/api/signout")
    async def sign_out(request: Request, response: Response) -> dict[str, Any]:
        session = request.cookies.get(COOKIE, "")
        log.signed_out.append(session)
        revoked = log.sessions.pop(session, None) is not None
        if (ws := log.sockets.pop(session, None)) is not None:
            await ws.send_json({"type": "error", "code": "signed_out", "message": "You signed out."})
            await ws.close(4401)
        response.delete_cookie(COOKIE)
        return {"ok": True, "revoked": int(revoked)}

    @app.websocket("/ws")
    async def voice(ws: WebSocket) -> None:
        await ws.accept()
        session = ws.cookies.get(COOKIE, "")
        if session not in log.sessions:
            await ws.send_json({"type": "error", "code": "bad_session", "message": "Please sign in again."})
            await ws.close(4401)
            return
        log.ws_sessions.append(session)
        log.sockets[session] = ws
        replied = False
        while True:
            try:
                message = await ws.receive()
            except RuntimeError:  # closed by a sign-out
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                data = message["bytes"]
                log.audio_frames += 1
                if len(data) % 2 or len(data) > 32000:
                    log.bad_audio.append(len(data))
                    continue
                samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
                if samples.size and np.sqrt(np.mean(samples**2)) > LOUD_RMS:
                    log.loud_samples += samples.size
                if not replied and log.loud_samples >= 16000:
                    replied = True
                    await first_reply(ws)
                continue
            frame = json.loads(message["text"])
            log.frames.append(frame)
            if frame["type"] == "hello":
                await ws.send_json(
                    {
                        "type": "ready",
                        "user": log.sessions[session],
                        "mode": "offline",
                        "input_rate": 16000,
                        "output_rate": 24000,
                    }
                )
            elif frame["type"] == "text":
                await typed_reply(ws, frame["text"])
            elif frame["type"] == "feedback":
                await ws.send_json({"type": "feedback", "helped": frame["helped"], "settled": True})
            elif frame["type"] == "end":
                await ws.send_json({"type": "ended", "reflection": REFLECTION})
                await ws.close(1000)
                return

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[str, StubLog]]:
    """The stub server on a free port, in a thread: (base_url, log)."""
    log = StubLog()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(stub_app(log), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "stub server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", log
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium whose microphone says a short sentence once."""
    work = tmp_path_factory.mktemp("browser")
    wav = speech_wav("Let's clean my room. I will start with the cups.", work / "speech.wav")
    driver = fake_mic_driver(wav, work / "profile")
    yield driver
    driver.quit()


def text_of(driver: WebDriver, testid: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text)


def shows(testid: str, words: str) -> str:
    """A JS condition: the element is visible and contains `words`."""
    el = f"document.querySelector('[data-testid={testid}]')"
    return f"{el} && {el}.offsetParent !== null && {el}.textContent.includes({json.dumps(words)})"


def test_a_spoken_turn_end_to_end(browser: WebDriver, stub: tuple[str, StubLog]) -> None:
    base, log = stub
    driver = browser

    # A name the server refuses is explained, and the person can try again.
    # A first visit offers sign-up, passkey first; a name the server refuses is explained.
    driver.get(base + "/")
    wait_for(driver, "document.body.dataset.auth === 'signed-out'", 5)
    assert driver.execute_script("return document.querySelector('[data-testid=mode-signup]').checked")
    buttons = [el.get_attribute("data-testid") for el in driver.find_elements(By.CSS_SELECTOR, "#signin-form button")]
    assert buttons == ["passkey-button", "signin-button"]
    driver.find_element(By.CSS_SELECTOR, "[data-testid=name-input]").send_keys("maya smith!")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=password-input]").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=signin-button]").click()
    wait_for(driver, shows("error-text", "letters, numbers"), 5)
    # Passkeys refuse IP addresses: the page says to open it at localhost instead.
    driver.find_element(By.CSS_SELECTOR, "[data-testid=passkey-button]").click()
    wait_for(driver, shows("error-text", "http://localhost:"), 5)

    sign_in(driver, base, "maya", PASSWORD)
    (session,) = [c["value"] for c in driver.get_cookies() if c["name"] == COOKIE]
    assert log.sessions[session] == "maya" and log.ws_sessions[-1] == session
    assert driver.execute_script("return document.cookie") == ""  # httpOnly: page script can't read it
    assert log.frames[0] == {"type": "hello", "sample_rate": 16000, "format": "pcm16"}
    assert text_of(driver, "who") == "maya"

    # Speaking: the fake microphone's sentence reaches the server as real PCM16 audio.
    start_talking(driver)
    wait_for(driver, shows("line-assistant", "Start with the cups."), 15)
    assert log.loud_samples >= 16000 and not log.bad_audio
    assert page_stats(driver)["audioChunksSent"] >= 10

    transcript = text_of(driver, "transcript")
    assert "You: Let's clean my room." in transcript and "Companion: Sounds good. Start with the cups." in transcript
    assert "Let's clean\n" not in transcript + "\n"  # the partial line was replaced, not appended
    assert text_of(driver, "step") == "Put the cups in the sink"
    assert text_of(driver, "plan-title") == "Plan: your room"
    assert text_of(driver, "plan").splitlines() == ["✓ Open the window", "→ Put the cups in the sink", "Make the bed"]
    driver.find_element(By.CSS_SELECTOR, "[data-testid=helped-button]").click()
    wait_for(driver, shows("feedback-note", "remember that helped"), 5)
    assert {"type": "feedback", "helped": True} in log.frames
    driver.save_screenshot(str(SCREENSHOT))
    assert text_of(driver, "checkin") == "In 10 minutes: See how the cups went"
    assert text_of(driver, "memories-summary") == "Drew on 2 memories"
    driver.find_element(By.CSS_SELECTOR, "[data-testid=memories-summary]").click()
    memories = [el.text for el in driver.find_elements(By.CSS_SELECTOR, "[data-testid=memory]")]
    assert memories[0] == "suggest break (outcome: re engaged): “Stretch for a minute, then cups.”"
    assert "create microsteps" in memories[1]
    assert text_of(driver, "memories-why") == \
        "Suggested: create microsteps — helped you 4 of 5 times when you felt like this"

    # The reply's voice plays all the way through.
    wait_for(driver, "window.sam2voiceStats.audioChunksPlayed >= 5", 5)
    assert page_stats(driver)["audioSamplesReceived"] == 5 * 2400

    # Typing instead: a long reply starts, then the person talks over it and playback stops at once.
    box = driver.find_element(By.CSS_SELECTOR, "[data-testid=type-input]")
    box.send_keys("tell me more", Keys.ENTER)
    wait_for(driver, "window.sam2voiceOutputLevel() > 0.05", 5)  # the tone is audible
    wait_for(driver, "window.sam2voiceStats.interruptions >= 1", 10)
    stats = page_stats(driver)
    assert stats["audioSourcesActive"] == 0 and stats["audioSamplesReceived"] == 35 * 2400
    played, sent_bytes, since = stats["audioChunksPlayed"], stats["audioBytesSent"], time.monotonic()
    time.sleep(0.3)
    assert driver.execute_script("return window.sam2voiceOutputLevel()") < 0.001  # silent at once
    time.sleep(0.7)
    stats, elapsed = page_stats(driver), time.monotonic() - since
    assert stats["audioChunksPlayed"] == played < 5 + 15  # flushed chunks never play
    assert driver.execute_script("return window.sam2voiceOutputLevel()") < 0.001
    # Meanwhile the microphone keeps streaming at 16 kHz x 2 bytes, whatever rate the browser runs at.
    assert 0.7 * 32000 * elapsed - 3200 <= stats["audioBytesSent"] - sent_bytes <= 1.3 * 32000 * elapsed + 3200
    typed = driver.find_elements(By.CSS_SELECTOR, "[data-turn='2'] [data-testid=line-user]")
    assert [el.text for el in typed] == ["You: tell me more"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "[data-testid=turn]")) == 2  # no duplicate typed line

    # A server error is shown in its own words, and can be put away.
    box.send_keys("please fail", Keys.ENTER)
    wait_for(driver, shows("error-text", ERROR_MESSAGE), 5)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=error-dismiss]").click()

    driver.find_element(By.CSS_SELECTOR, "[data-testid=done-button]").click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=end-button]").click()
    wait_for(driver, shows("reflection", REFLECTION), 5)
    sent = [frame["type"] for frame in log.frames]
    assert sent[-2:] == ["end_of_speech", "end"] and "end_of_speech" in sent[:-2]
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=error]").get_attribute("hidden") is not None
    assert text_of(driver, "status") == "Session ended."


def test_a_reload_keeps_the_sign_in_and_signing_out_ends_it(browser: WebDriver, stub: tuple[str, StubLog]) -> None:
    base, log = stub
    driver = browser
    session = str(httpx.post(f"{base}/api/signin", json={"name": "sam", "password": PASSWORD}).cookies[COOKIE])
    driver.get(base + "/")
    driver.delete_all_cookies()
    driver.add_cookie({"name": COOKIE, "value": session, "path": "/", "httpOnly": True, "sameSite": "Strict"})
    driver.refresh()
    wait_for(driver, "window.sam2voiceStats.messages.some((m) => m.type === 'ready')", 10)
    assert log.ws_sessions[-1] == session and text_of(driver, "who") == "sam"
    assert not driver.find_element(By.CSS_SELECTOR, "[data-testid=signin]").is_displayed()

    # Signed out elsewhere (the same session): the open socket closes with 4401 and the page asks again.
    httpx.post(f"{base}/api/signout", cookies={COOKIE: session})
    wait_for(driver, shows("error-text", "sign in again"), 10)
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=name-input]").is_displayed()
    assert driver.execute_script("return document.querySelector('[data-testid=mode-signin]').checked")  # known here

    # Signing in again, then the page's own sign-out button: the session is revoked at the server.
    sign_in(driver, base, "sam", PASSWORD, signup=False)
    (again,) = [c["value"] for c in driver.get_cookies() if c["name"] == COOKIE]
    driver.find_element(By.CSS_SELECTOR, "[data-testid=signout-button]").click()
    wait_for(driver, "document.querySelector('[data-testid=name-input]').offsetParent !== null", 5)
    assert log.signed_out[-1] == again and again not in log.sessions
    driver.refresh()
    wait_for(driver, "document.querySelector('[data-testid=name-input]').offsetParent !== null", 5)
