"""Headless Chromium with a WAV file as the microphone, for tests of the voice page.

Uses Debian's /usr/bin/chromium and /usr/bin/chromedriver (never a driver download; see
../shared/NOTES.md "Headless Chromium"). The page's test hook is `window.sam2voiceStats`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class PageConditionTimeout(AssertionError):
    """A page condition did not become true in time; carries what the page showed."""


def chromium_available() -> bool:
    """True when Debian's chromium and chromedriver are both installed."""
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def speech_wav(text: str, path: Path, lead_silence: float = 1.0, tail_silence: float = 0.5) -> Path:
    """Speak `text` into a mono 16-bit WAV with espeak-ng, padded with silence by sox.

    The lead silence matters: the fake microphone starts playing the file as soon as
    getUserMedia opens, before the page is streaming.
    """
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise RuntimeError("speech_wav needs Debian's espeak-ng and sox (apt-get install espeak-ng sox)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-c", "1", "-b", "16", str(path), "pad", str(lead_silence), str(tail_silence)],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return path


def fake_mic_driver(wav_path: Path, user_data_dir: Path) -> WebDriver:
    """A headless Chromium whose microphone plays `wav_path` once (then silence).

    `user_data_dir` should be a fresh directory per browser. The caller quits the driver.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_data_dir.resolve()}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav_path.resolve()}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1000,1400",
    ):
        options.add_argument(flag)
    # The console log explains most page failures; wait_for attaches it to its error.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from trying to download one.
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def page_stats(driver: WebDriver) -> dict[str, Any]:
    """A copy of the page's `window.sam2voiceStats` (empty dict before the page set it up)."""
    stats = driver.execute_script("return window.sam2voiceStats ? JSON.stringify(window.sam2voiceStats) : '{}'")
    return dict(json.loads(stats))


def _browser_log(driver: WebDriver) -> str:
    try:
        entries = driver.get_log("browser")
    except Exception:  # noqa: BLE001 - a diagnostic must never hide the real failure
        return "(no browser log)"
    return "\n".join(f"{entry.get('level')}: {entry.get('message')}" for entry in entries[-30:])


def wait_for(driver: WebDriver, js_condition: str, timeout: float) -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value.

    Raises PageConditionTimeout with the page's status, error text, last frames and console log.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return ({js_condition});")
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    shown = driver.execute_script(
        "const t = (id) => (document.querySelector(`[data-testid=${id}]`) || {}).textContent;"
        "return {status: t('status'), error: t('error-text')};"
    )
    stats = page_stats(driver)
    stats["messages"] = stats.get("messages", [])[-10:]
    stats["sent"] = stats.get("sent", [])[-10:]
    raise PageConditionTimeout(
        f"not true after {timeout:.1f}s: {js_condition}\npage: {shown}\nstats: {stats}\nlog:\n{_browser_log(driver)}"
    )


DEFAULT_PASSWORD = "a long enough password"


def sign_in(driver: WebDriver, base_url: str, name: str, password: str = DEFAULT_PASSWORD, *,
            signup: bool = True) -> None:
    """Open the page, sign up (or in) as `name` with a password, and wait until the companion is ready."""
    driver.get(base_url.rstrip("/") + "/")
    wait_for(driver, "document.body.dataset.auth", 10)  # the page asked the server who is signed in
    if driver.execute_script("return document.body.dataset.auth === 'signed-in'"):
        # Signed in already (the session cookie): sign out so the form shows.
        driver.find_element(By.CSS_SELECTOR, "[data-testid=signout-button]").click()
    wait_for(driver, "document.querySelector('[data-testid=name-input]').offsetParent !== null", 10)
    driver.find_element(By.CSS_SELECTOR, f"[data-testid=mode-{'signup' if signup else 'signin'}]").click()
    for testid, value in (("name-input", name), ("password-input", password)):
        field = driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")
        field.clear()
        field.send_keys(value)
    count = "window.sam2voiceStats.messages.filter((m) => m.type === 'ready').length"
    before = driver.execute_script(f"return {count}")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=signin-button]").click()
    wait_for(driver, f"{count} > {before}", 10)


def start_talking(driver: WebDriver) -> None:
    """Press "Start talking" and wait until the microphone is streaming."""
    wait_for(driver, "!document.querySelector('[data-testid=talk-button]').disabled", 10)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=talk-button]").click()
    wait_for(driver, "document.querySelector('[data-testid=talk-button]').getAttribute('aria-pressed') === 'true'", 10)


def silent_mic_driver(work: Path) -> WebDriver:
    """Headless Chromium whose microphone plays one second of silence (for tests where nobody talks)."""
    silence = work / "silence.wav"
    with wave.open(str(silence), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(32000))
    return fake_mic_driver(silence, work / "profile")
