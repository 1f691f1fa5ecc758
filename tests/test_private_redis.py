"""Two people on one machine: two HOMEs run the quick start's commands at the same time, each
on their own private embedded server, with no setting changed (issue #15)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

from app.embedded_redis import EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]
# What a newcomer's shell would not have: everything the test run points elsewhere.
DROP = ("REDIS_URL", "SAM2VOICE_REDIS_URL", "SAM2VOICE_DATA_DIR", "SAM2VOICE_EMBEDDED_PORT", "XDG_DATA_HOME",
        "SAM2VOICE_MEMORY__NAMESPACE", "GOOGLE_API_KEY", "GEMINI_API_KEY")


def sam2voice(home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in DROP} | {"HOME": str(home), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-c", "from app.cli import app; app()", *args], input=stdin,
                          capture_output=True, timeout=300, cwd=home, env=env, check=False)


def person(home: Path) -> tuple[str, list[dict[str, object]]]:
    """doctor, then one chat turn and /end: the quick start's path, on the default settings."""
    doctor = sam2voice(home, "doctor")
    assert doctor.returncode == 0, doctor.stdout.decode() + doctor.stderr.decode()
    chat = sam2voice(home, "chat", "--user", "me", "--model", "template", "--jsonl",
                     stdin=f"hi, I'm {home.name} and I can't start my email\n/end\n".encode())
    assert chat.returncode == 0, chat.stderr.decode()
    return doctor.stdout.decode(), [json.loads(line) for line in chat.stdout.decode().splitlines()]


def test_two_homes_run_doctor_and_a_chat_at_the_same_time(tmp_path: Path) -> None:
    homes = [tmp_path / "ann", tmp_path / "ben"]
    for home in homes:
        home.mkdir()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            (doctor_a, chat_a), (doctor_b, chat_b) = pool.map(person, homes)
        for doctor in (doctor_a, doctor_b):
            assert "embedded unix://" in doctor
        assert chat_a[0]["reply"] and chat_b[0]["reply"] and chat_a[-1]["ended"] and chat_b[-1]["ended"]
        servers = [EmbeddedRedis(home / ".local" / "share" / "sam2voice" / "redis") for home in homes]
        a, b = (server.status() for server in servers)
        assert a.running and b.running and a.pid != b.pid and a.url != b.url
        status = sam2voice(homes[0], "redis", "status").stdout.decode()
        assert "unix://" in status and "redis-cli -s" in status
        export = json.loads(sam2voice(homes[1], "memory", "export", "--user", "me").stdout)
        assert "ben" in json.dumps(export) and "ann" not in json.dumps(export)  # each server holds its own person
    finally:
        for home in homes:
            sam2voice(home, "redis", "stop")
