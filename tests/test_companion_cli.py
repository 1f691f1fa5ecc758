"""The companion's commands (chat, demo, eval learning, bench graph) run in-process against
the test server, with the deterministic template model."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from rich.console import Console
from typer.testing import CliRunner

from app.accounts import AccountStore
from app.audit import AuditLog
from app.cli import app
from app.cli.chat import INPUT_WARNING, readable, require_readable, show
from graphs.session import TurnResult
from graphs.turn import Decision, DueItem, FewShot
from memories.errors import InvalidInput
from tests.companion_fixtures import SUCCESS_REPLY

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> str:
    """Point the app at the test server, in a namespace of its own; returns the namespace."""
    namespace = f"cli{uuid.uuid4().hex[:10]}"
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAM2VOICE_MEMORY__NAMESPACE", namespace)
    monkeypatch.setenv("SAM2VOICE_CHAT_PROVIDER", "template")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return namespace


def export(user: str) -> dict[str, Any]:
    result = runner.invoke(app, ["memory", "export", "--user", user])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_chat_resumes_across_runs_and_learns_from_the_answer(env: str) -> None:
    too_long = "x" * 2001
    first = runner.invoke(app, ["chat", "--user", "maya"],
                          input=f"{too_long}\nI can't get myself to start my essay\n")
    assert first.exit_code == 0, first.output
    assert first.output.count("sam ›") == 1  # the over-long line was refused, not sent, and the chat went on
    assert "the limit is 2000" in first.output and "Traceback" not in first.output
    assert "Bye for now" in first.output  # end of input leaves the session open

    second = runner.invoke(app, ["chat", "--user", "maya", "--show-memory"], input=f"{SUCCESS_REPLY}\n/end\n")
    assert second.exit_code == 0, second.output
    assert "learned" in second.output and any(f"last intervention {o}" in second.output for o in (
        "task progress", "re engaged", "task completed"))  # settled from run 1
    assert "Session saved." in second.output

    data = export("maya")
    said = {row["user_context"]: row["outcome"] for row in data["interventions"] if "user_context" in row}
    assert said["I can't get myself to start my essay"] == "task_progress"
    assert len(data["reflections"]) == 1


def test_chat_refuses_a_bad_user_or_model_clearly(env: str) -> None:
    bad_user = runner.invoke(app, ["chat", "--user", " padded "], input="/quit\n")
    assert bad_user.exit_code == 1 and "user_id" in bad_user.output
    bad_model = runner.invoke(app, ["chat", "--user", "maya", "--model", "gpt-9"], input="/quit\n")
    assert bad_model.exit_code == 2 and "--model must be" in bad_model.output



# --- chat robustness: markup-like text is printed as it is, undecodable input is replaced ----------

TRICKY = "[bold]not bold[/] and a lone [/] too"


def test_show_prints_replies_memories_and_plans_literally_not_as_markup() -> None:
    result = TurnResult(
        reply=f"sure, {TRICKY}", thread_id="t1", notice="saved to C:\\",  # a trailing backslash, then the closing tag
        due=[DueItem(kind="reminder", text=f"due [/]: {TRICKY}", due_at=0)],
        plan={"task": f"task {TRICKY}", "steps": [f"one {TRICKY}", f"two {TRICKY}", f"three {TRICKY}"],
              "current": 2, "done": False},
        decision=Decision(tool="create_microsteps", source="request", reason=f"why {TRICKY}", from_memory=True),
        few_shot=[FewShot(id="i1", said=f"said {TRICKY}", reply="r", tool="suggest_break", outcome="task_progress",
                          similarity=0.5, score=0.5),
                  FewShot(id="i2", said="[/]", reply="r", tool=None, outcome="abandoned", contrast=True,
                          similarity=0.25, score=0.2)],
        settled=[{"id": "i1", "outcome": "task_progress"}], used_memory_ids=["m1"])
    console = Console(record=True, width=400, force_terminal=True, color_system="standard")
    show(console, result, show_memory=True)  # raised MarkupError before: "closing tag '[/]' ... has nothing to close"
    text = console.export_text(styles=False, clear=False)
    for literal in (f"sam › sure, {TRICKY}", "saved to C:\\", f"⏰ Reminder: due [/]: {TRICKY}", f"plan: task {TRICKY}",
                    f"1. one {TRICKY}", f"→ 2. two {TRICKY}", f"3. three {TRICKY}", f"why {TRICKY}",
                    f'"said {TRICKY}" → suggest_break (task_progress', '"[/]" → reply (did not help'):
        assert literal in text, literal
    styled = console.export_text(styles=True)
    assert "\x1b[1;36msam ›" in styled and "\x1b[1mrecalled" in styled  # the fixed labels keep their style


def test_readable_replaces_nuls_and_lone_surrogates_and_refuses_nothing_readable() -> None:
    assert readable("plain text") == ("plain text", None)
    assert readable("hi \udcff there\x00") == ("hi \ufffd there\ufffd", INPUT_WARNING)
    require_readable("hi \ufffd there")
    with pytest.raises(InvalidInput, match="none of it was valid text"):
        require_readable(" \ufffd \ufffd ")


BAD_BYTES = b"hi \xff\xfe there\n"


def test_chat_jsonl_replaces_undecodable_bytes_and_says_so(env: str) -> None:
    result = runner.invoke(app, ["chat", "--user", "ivy", "--jsonl"], input=BAD_BYTES + b"\xff \xfe\n/end\n")
    assert result.exit_code == 0, result.output  # was: UnicodeDecodeError
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3  # exactly one object per line in
    assert rows[0]["said"] == "hi \ufffd\ufffd there" and rows[0]["reply"]
    assert rows[0]["input_warning"] == INPUT_WARNING
    assert "none of it was valid text" in rows[1]["error"] and rows[1]["input_warning"] == INPUT_WARNING
    assert rows[2]["ended"] is True and "input_warning" not in rows[2]


def test_chat_replaces_undecodable_bytes_and_says_so(env: str) -> None:
    result = runner.invoke(app, ["chat", "--user", "ivy"], input=BAD_BYTES + b"\xff\xfe\n/end\n")
    assert result.exit_code == 0, result.output  # was: UnicodeDecodeError
    assert "Traceback" not in result.output
    assert result.output.count(INPUT_WARNING) == 1  # told once for the line; the unreadable line is refused
    assert "none of it was valid text" in result.output
    assert result.output.count("sam ›") == 2 and "Session saved." in result.output  # the first line got a reply


def test_chat_jsonl_process_survives_surrogate_escaped_bytes_and_nuls(env: str, tmp_path: Path) -> None:
    """A real process: stdin decoded with surrogateescape (as under a C locale) once gave a pydantic
    traceback from the graph for an invalid byte; a NUL reached memory and the terminal unchanged."""
    done = subprocess.run([sys.executable, "-c", "from app.cli import app; app()", "chat", "--user", "ivy", "--jsonl"],
                          input=b"hi \xff there \x00 ok\n/end\n", capture_output=True, timeout=180, cwd=tmp_path,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:surrogateescape"}, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    rows = [json.loads(line) for line in done.stdout.decode().strip().splitlines()]
    assert len(rows) == 2
    assert rows[0]["said"] == "hi \ufffd there \ufffd ok" and rows[0]["reply"] and rows[0]["input_warning"]
    assert rows[1]["ended"] is True
    assert b"Traceback" not in done.stderr

def test_demo_runs_the_requested_sessions_and_remembers_them(env: str) -> None:
    result = runner.invoke(app, ["demo", "--model", "template", "--sessions", "2"])
    assert result.exit_code == 0, result.output
    assert "Session 1" in result.output and "Session 2" in result.output and "Session 3" not in result.output
    assert "Helped per session:" in result.output
    data = export("demo-sam")
    assert len([r for r in data["interventions"] if "user_context" in r]) >= 2 * 4
    assert data["profile"][0]["name"] == "Sam"


PERSONA = {
    "user_id": "pat",
    "situations": [{"kind": "starting", "utterances": ["I can't get myself to start my essay"],
                    "success": {"suggest_break": 0.9}}],
    "success_replies": [SUCCESS_REPLY],
    "failure_replies": ["That didn't help, I gave up."],
}


def write_personas(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps({"seed": 1, "sessions": 3, "turns_per_session": 2, "personas": [PERSONA], **changes}))
    return path


def test_eval_learning_reports_both_arms_as_json(env: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "learning", "--personas", str(write_personas(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress went to stderr
    assert "session 3/3" in result.stderr
    on, off = report["memory_on"], report["memory_off"]
    assert len(on["success_by_session"]) == 3 and len(off["success_by_session"]) == 3
    assert list(on["by_persona"]) == ["pat"] and len(on["by_persona"]["pat"]) == 3
    assert all(0 <= r <= 1 for r in [*on["success_by_session"], *off["success_by_session"]])
    assert 0 <= on["outcome_reading_accuracy"] <= 1 and "outcome_reading_accuracy" not in off
    assert report["oracle_rate"] == 0.9 and report["last_sessions"] == 3
    assert report["memory_on_last"] == pytest.approx(sum(on["success_by_session"]) / 3, abs=1e-4)
    assert isinstance(report["target_met"], bool)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "is not valid JSON"),
    ({"seed": 1, "sessions": 3, "turns_per_session": 2,
      "personas": [{**PERSONA, "situations": [{**PERSONA["situations"][0], "success": {"teleport": 0.5}}]}]},
     "personas.0.situations.0.success"),
    ({"seed": 1, "sessions": 3, "turns_per_session": 2, "personas": []}, "personas"),
], ids=["missing", "not-json", "unknown-tool", "no-personas"])
def test_eval_learning_explains_a_bad_personas_file(env: str, tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    result = runner.invoke(app, ["eval", "learning", "--personas", str(path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bench_graph_reports_turn_overhead_as_json(env: str) -> None:
    result = runner.invoke(app, ["bench", "graph", "--interventions", "50", "--turns", "10", "--local-turns", "0",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("turn_overhead_p50_ms", "turn_overhead_p95_ms"):
        assert math.isfinite(report[key]) and report[key] > 0
    assert report["turn_overhead_p95_ms"] >= report["turn_overhead_p50_ms"]
    assert (report["interventions"], report["turns"], report["local_turns"]) == (50, 10, 0)
    assert "local_reply_p50_ms" not in report
    assert report["redis"].startswith("REDIS_URL")


WHY_LINES = ("helped you ", "helps most people in moments like this", "helps some people in moments like this",
             "usually suits a moment like this", "trying something new", "trying it once more")


def test_chat_jsonl_says_why_a_tool_was_chosen(env: str) -> None:
    result = runner.invoke(app, ["chat", "--user", "wren", "--jsonl"],
                           input=b"i cant start my essay, its due tomorrow\nhey there\n")
    assert result.exit_code == 0, result.output
    struggle, greeting = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert struggle["tool"] and struggle["why"].startswith(WHY_LINES), struggle
    assert struggle["why"] == struggle["decision"]["why"]
    assert greeting["why"] is None  # no policy choice, no why


def test_show_memory_says_which_tool_and_why(env: str) -> None:
    result = runner.invoke(app, ["chat", "--user", "wren", "--show-memory"], input="i cant start my essay\n")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "chose" in line)
    words = " ".join(row.strip("│ ").split())  # one line of the memory panel
    tool, _, why = words.removeprefix("chose ").partition(" — ")
    assert tool and " " not in tool and why.startswith(WHY_LINES), result.output


def test_memory_forget_deletes_the_account_and_audit_log_too(env: str, redis_url: str) -> None:
    # `memory forget` used to leave the person's account (password hash, passkeys, sessions) and
    # audit log behind: it now uses the same person-data service as the page's "forget me".
    async def sign_up() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await AccountStore(client, env).sign_up("ines", "a long enough password")
            await AuditLog(client, env).record("ines", "sign_up", address="127.0.0.1")
        finally:
            await client.aclose()

    async def left() -> tuple[bool, int]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await AccountStore(client, env).exists("ines"), len(await AuditLog(client, env).events("ines"))
        finally:
            await client.aclose()

    asyncio.run(sign_up())
    assert runner.invoke(app, ["chat", "--user", "ines", "--jsonl"], input=b"i cant start my essay\n").exit_code == 0
    assert asyncio.run(left()) == (True, 1)
    forgot = runner.invoke(app, ["memory", "forget", "--user", "ines", "--yes"])
    assert forgot.exit_code == 0, forgot.output
    counts = json.loads(forgot.stdout)
    assert counts["account"] >= 1 and counts["audit"] >= 1 and counts["interventions"] >= 1
    assert asyncio.run(left()) == (False, 0)
