"""The sam2voice command line, run in-process against the real test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.conftest import free_port

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def test_doctor_passes_offline(env: None, tmp_path: Path) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "REDIS_URL" in result.output
    assert not (tmp_path / "redis").exists()  # REDIS_URL is set: nothing was started
    assert "pass" in result.output and "FAIL" not in result.output
    assert "skip" in result.output  # no Gemini key: the chat model is skipped, not failed


def test_doctor_fails_with_an_unreachable_redis(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    as_json = runner.invoke(app, ["doctor", "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and any(c["ok"] is False and "redis" in c["part"].lower() for c in report["checks"])


def test_doctor_json_is_one_object_a_machine_can_read(env: None) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing but the object on stdout
    assert report["ok"] is True and {c["ok"] for c in report["checks"]} <= {True, None}
    assert all(set(c) == {"part", "ok", "detail"} for c in report["checks"])


def test_invalid_settings_are_reported_not_traced(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAM2VOICE_EMBEDDED_PORT", "eighty")
    result = runner.invoke(app, ["redis", "status"])
    assert result.exit_code == 2
    assert "Invalid settings" in result.output and "embedded_port" in result.output


def test_redis_start_status_stop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAM2VOICE_EMBEDDED_PORT", str(free_port()))
    assert runner.invoke(app, ["redis", "status"]).exit_code == 3
    started = runner.invoke(app, ["redis", "start"])
    assert started.exit_code == 0 and "running at" in started.output
    status = runner.invoke(app, ["redis", "status"])
    assert status.exit_code == 0 and status.output.startswith("running")
    stopped = runner.invoke(app, ["redis", "stop"])
    assert "stopped" in stopped.output
    assert (tmp_path / "redis" / "appendonlydir").is_dir()  # append-only persistence is on


def test_demo_then_export_then_forget(env: None) -> None:
    demo = runner.invoke(app, ["demo", "--model", "template", "--sessions", "2"])
    assert demo.exit_code == 0, demo.output
    assert "Session 2" in demo.output and "Helped per session" in demo.output
    exported = runner.invoke(app, ["memory", "export", "--user", "demo-sam"])
    assert exported.exit_code == 0
    data = json.loads(exported.output)
    assert len(data["interventions"]) >= 5 and data["profile"][0]["name"] == "Sam"
    forgot = runner.invoke(app, ["memory", "forget", "--user", "demo-sam", "--yes"])
    assert forgot.exit_code == 0 and json.loads(forgot.output)["interventions"] >= 5
    empty = json.loads(runner.invoke(app, ["memory", "export", "--user", "demo-sam"]).output)
    assert not any(empty.pop("coaching").values())
    assert all(not rows for rows in empty.values())
    assert forgot.exit_code == 0 and json.loads(forgot.output)["sessions"] == 2  # both conversations deleted


def test_a_malformed_user_id_is_a_clear_error(env: None) -> None:
    result = runner.invoke(app, ["memory", "export", "--user", " padded "])
    assert result.exit_code == 1
    assert "user_id" in result.output and "whitespace" in result.output
