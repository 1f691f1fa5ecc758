"""``sam2voice memory inspect --user ID [--json]``: the debugging view of one person's memory,
run in-process against the real test server with data written through the memory layer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.cli import console as cli_console
from memories.config import MemorySettings
from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.reflections import ReflectionMemory
from memories.stack import open_memory
from tests.companion_fixtures import fresh_namespace

runner = CliRunner()


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    name = fresh_namespace()
    monkeypatch.setenv("SAM2VOICE_MEMORY__NAMESPACE", name)
    return name


def remember(redis_url: str, namespace: str) -> str:
    """Maya: two interventions (one settled as helped, with a quality score), one reflection;
    Sam: one intervention. Returns the settled intervention's id."""
    async def write() -> str:
        stack = await open_memory(redis_url, MemorySettings(namespace=namespace))
        try:
            interventions = stack.registry.get(InterventionMemory)
            reflections = stack.registry.get(ReflectionMemory)
            assert interventions is not None and reflections is not None
            helped = await interventions.save("maya", {"text": "Rinse one cup.", "user_context": "I can't start "
                                                       "the dishes", "tool_name": "create_microsteps",
                                                       "quality": 0.9})
            await interventions.settle("maya", helped, Outcome.TASK_PROGRESS)
            await interventions.save("maya", {"text": "Stretch for a minute.", "user_context": "too much noise"})
            await interventions.save("sam", {"text": "One line.", "user_context": "I can't write"})
            await reflections.save("maya", {"insight": "Tiny steps get maya going on the dishes."})
            return helped
        finally:
            await stack.aclose()

    return asyncio.run(write())


def test_inspect_json_counts_interventions_scores_reflections_and_indexes(namespace: str, redis_url: str) -> None:
    helped = remember(redis_url, namespace)
    result = runner.invoke(app, ["memory", "inspect", "--user", "maya", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)  # nothing but the object on stdout
    assert found["user"] == "maya"
    assert found["counts"] == {"profile": 0, "interventions": 2, "reflections": 1, "feedback": 0,
                               "current_state": 0}
    assert found["pending"] == 1
    by_id = {i["id"]: i for i in found["interventions"]}
    assert len(by_id) == 2 and by_id[helped]["outcome"] == "task_progress" and by_id[helped]["quality"] == 0.9
    assert by_id[helped]["tool"] == "create_microsteps" and by_id[helped]["settled_at"]
    assert "I can't write" not in result.stdout  # Sam's interventions are Sam's
    assert found["success_rates"]["create_microsteps"]["settled"] == 1
    assert [r["insight"] for r in found["reflections"]] == ["Tiny steps get maya going on the dishes."]
    indexes = {i["element"]: i for i in found["indexes"]}
    assert indexes["interventions"]["documents"] == 3  # the index holds everyone's
    assert indexes["interventions"]["index"].startswith(namespace)


def test_inspect_tables_for_people(namespace: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_console, "width", 160)  # wide enough that no cell folds, whatever the terminal
    remember(redis_url, namespace)
    result = runner.invoke(app, ["memory", "inspect", "--user", "maya", "--limit", "1"])
    assert result.exit_code == 0, result.output
    for title in ("memory of maya", "recent interventions", "results per tool", "reflections", "indexes"):
        assert title in result.output
    assert "Stretch" in result.output and "Rinse" not in result.output  # --limit 1: the newest only


def test_inspect_refuses_a_malformed_user_id(namespace: str) -> None:
    result = runner.invoke(app, ["memory", "inspect", "--user", "bad\tname"])
    assert result.exit_code == 1
    assert "InvalidInput" in result.output and "printable" in result.output
