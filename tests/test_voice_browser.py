"""The whole voice path in a browser: headless Chromium (Debian) speaks an espeak-ng WAV into
the page's microphone, against a real ``sam2voice serve`` process — once with Gemini Live
played by the fake Live server (TLS, reached through GOOGLE_GEMINI_BASE_URL and
SSL_CERT_FILE like a real deployment's settings), once on the offline voice path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.eval.fakes.live import FakeLiveServer, LiveTurn
from memories.embeddings import LocalMiniLMEmbeddings
from memories.interventions import InterventionMemory
from tests.browser import chromium_available, fake_mic_driver, page_stats, sign_in, speech_wav, start_talking, wait_for
from tests.companion_fixtures import fresh_namespace, open_stack
from tests.conftest import element, free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not chromium_available(), reason="Debian chromium + chromium-driver not installed")]
SAID = "I can't start my essay, it is too big."
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def serve(redis_url: str, namespace: str, data_dir: Path, **env: str) -> Iterator[str]:
    """``sam2voice serve`` in a subprocess on a free port; yields its base URL."""
    port = free_port()
    environment = {**os.environ, "REDIS_URL": redis_url, "SAM2VOICE_MEMORY__NAMESPACE": namespace,
                   "SAM2VOICE_DATA_DIR": str(data_dir), "SAM2VOICE_CHAT_PROVIDER": "template",
                   "SAM2VOICE_LOG_LEVEL": "INFO", **env}
    if "GOOGLE_API_KEY" not in env:  # offline: no key, whatever the developer's shell has
        environment.pop("GOOGLE_API_KEY", None)
    log = data_dir / "serve.log"
    with log.open("w") as out:
        command = [str(Path(sys.executable).parent / "sam2voice"), "serve", "--port", str(port)]
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sam2voice serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def fake() -> AsyncIterator[FakeLiveServer]:
    async with FakeLiveServer() as server:
        yield server


def talk_in_browser(base: str, wav: Path, profile: Path, user: str, *, reply_timeout: float) -> dict[str, object]:
    """Sign in, talk (the WAV is the microphone), wait for the reply's words and audio."""
    driver = fake_mic_driver(wav, profile)
    try:
        sign_in(driver, base, user)
        start_talking(driver)
        wait_for(driver, "document.querySelector('[data-testid=line-user]') !== null", reply_timeout)
        wait_for(driver, "document.querySelector('[data-testid=line-assistant]') !== null", reply_timeout)
        wait_for(driver, "window.sam2voiceStats.audioChunksPlayed > 0", reply_timeout)
        user_line = driver.execute_script("return document.querySelector('[data-testid=line-user]').innerText")
        reply_line = driver.execute_script("return document.querySelector('[data-testid=line-assistant]').innerText")
        return {"user": user_line, "reply": reply_line, "stats": page_stats(driver)}
    finally:
        driver.quit()


async def test_the_page_talks_to_gemini_live_through_the_graph(redis_url: str, minilm: LocalMiniLMEmbeddings,
                                                               fake: FakeLiveServer, tmp_path: Path) -> None:
    fake.script(LiveTurn(transcript=SAID, tool_calls=[{"name": "create_microsteps", "args": {"task": "my essay"}}],
                         reply="Let's make it tiny: open the document.", audio_ms=800))
    namespace = fresh_namespace()
    wav = speech_wav(SAID, tmp_path / "said.wav")
    env = {"GOOGLE_API_KEY": "fake-key", "GOOGLE_GEMINI_BASE_URL": fake.base_url, "SSL_CERT_FILE": str(fake.cert_path)}
    with serve(redis_url, namespace, tmp_path, **env) as base:
        page = await asyncio.to_thread(talk_in_browser, base, wav, tmp_path / "chromium", "dana", reply_timeout=30)
    assert "essay" in str(page["user"]).lower()
    assert "tiny" in str(page["reply"]).lower()
    assert fake.audio_in_bytes > 16_000  # the microphone's audio reached the Live model
    assert any(f.get("type") == "memory" for f in page["stats"]["messages"])  # type: ignore[index]
    async with open_stack(redis_url, minilm, namespace) as stack:
        (pending,) = await element(stack, InterventionMemory).pending("dana", limit=5)
    assert pending.tool_name == "create_microsteps" and "essay" in pending.user_context.lower()


async def test_the_page_works_offline_with_local_speech(redis_url: str, minilm: LocalMiniLMEmbeddings,
                                                         tmp_path: Path) -> None:
    namespace = fresh_namespace()
    # 2 s of lead silence: the fake microphone starts when getUserMedia opens, and on a busy
    # machine the page's capture can take over a second to start sending.
    wav = speech_wav(SAID, tmp_path / "said.wav", lead_silence=2.0, tail_silence=1.5)
    with serve(redis_url, namespace, tmp_path) as base:
        page = await asyncio.to_thread(talk_in_browser, base, wav, tmp_path / "chromium", "emil", reply_timeout=90)
    heard = str(page["user"]).lower()
    assert "start" in heard or "essay" in heard, heard  # whisper heard the espeak sentence
    assert page["reply"]
    async with open_stack(redis_url, minilm, namespace) as stack:
        pending = await element(stack, InterventionMemory).pending("emil", limit=5)
    assert len(pending) == 1, (heard, page["reply"])
    assert pending[0].user_context.lower() in heard  # the graph got the transcript
