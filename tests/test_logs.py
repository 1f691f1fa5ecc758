"""Logs (``app/logs.py``): ``SAM2VOICE_LOG_FORMAT=json`` gives one JSON object per line, every
line of a turn carries the turn's id, and nothing at INFO or above carries what the person
said, even when a failing model's error repeats it. Real turns over the real graph and Redis."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from typer.testing import CliRunner

from app.cli import app as cli
from app.logs import configure_logging
from app.settings import Settings
from app.web.http_protocol import uvicorn_options
from graphs.tracing import turn_scope
from memories.embeddings import LocalMiniLMEmbeddings
from tests.companion_fixtures import build_rig, open_stack
from voice.link import CompanionLink

SECRET = "quetzal"  # a word only the person says


class EchoingFailingModel(BaseChatModel):
    """A chat model that always fails with an error repeating its input, as a validation error
    of a model's output does (pydantic puts the input in its message)."""

    @property
    def _llm_type(self) -> str:
        return "echoing-failure"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        raise ValueError("could not use the output for: " + " | ".join(str(m.content) for m in messages))

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:  # type: ignore[override]
        def fail(prompt: Any) -> Any:
            raise ValueError(f"invalid {schema.__name__}, input_value={prompt!r}")

        return RunnableLambda(fail)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Start from a root logger with no handlers (an earlier in-process `chat` leaves its log
    file and a quieted stderr handler behind); leave it as the test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers[:] = []
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one object, or this raises


def test_json_lines_are_one_object_each_with_the_turn(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json"), level="INFO", stream=stream)
    log = logging.getLogger("sam2voice.test")
    log.info("outside a turn")
    with turn_scope("text") as turn_id:
        log.warning("two\nlines")
        try:
            raise RuntimeError("broken")
        except RuntimeError:
            log.exception("failed")
    log.debug("not at INFO")
    lines = json_lines(stream.getvalue())
    assert [entry["message"] for entry in lines] == ["outside a turn", "two\nlines", "failed"]
    assert lines[0]["turn"] is None and lines[1]["turn"] == lines[2]["turn"] == turn_id
    assert set(lines[0]) == {"ts", "level", "logger", "message", "turn"} and lines[0]["logger"] == "sam2voice.test"
    assert "RuntimeError: broken" in lines[2]["exc"] and lines[1]["level"] == "WARNING"


def test_text_lines_name_the_turn_and_reconfiguring_never_doubles_lines(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(), level="INFO", stream=stream)
    configure_logging(Settings(), level="INFO")  # as the CLI does on every _settings(): reuses its handler
    log = logging.getLogger("sam2voice.test")
    with turn_scope("text") as turn_id:
        log.info("in a turn")
    log.info("after it")
    assert stream.getvalue().splitlines() == [f"INFO sam2voice.test: in a turn [turn {turn_id}]",
                                              "INFO sam2voice.test: after it"]


async def test_a_turn_logs_json_with_its_id_and_never_the_persons_words(
        root_logging: None, redis_url: str, minilm: LocalMiniLMEmbeddings, tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json"), level="INFO", stream=stream)
    async with open_stack(redis_url, minilm) as stack:
        rig = await build_rig(stack, tmp_path, chat_model=EchoingFailingModel())
        link = CompanionLink(rig.session("maya"))  # the voice front end: one turn scope per run
        await link.send_text(f"I can't start cleaning the {SECRET} cage")
        direct = rig.session("ana")  # no front end: the nodes name the turn by its message id
        await direct.send(f"I can't get going on my {SECRET} essay")
    lines = json_lines(stream.getvalue())
    in_turns = [entry for entry in lines if entry["logger"].startswith(("graphs.", "tools."))]
    assert in_turns, "the failing model should have been logged"
    assert all(entry["turn"] for entry in in_turns)
    assert {entry["turn"][0] for entry in in_turns} == {"t", "m"}  # a front end's scope, and the turn key
    assert any(entry["logger"] == "graphs.nodes.respond" and entry["level"] == "WARNING" for entry in in_turns)
    assert all(SECRET not in json.dumps(entry) for entry in lines)  # nothing the person said, at INFO+


def test_the_cli_logs_json_lines_on_request(root_logging: None, monkeypatch: pytest.MonkeyPatch, redis_url: str,
                                            tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SAM2VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAM2VOICE_LOG_FORMAT", "json")
    monkeypatch.setenv("SAM2VOICE_LOG_LEVEL", "INFO")
    result = CliRunner().invoke(cli, ["memory", "inspect", "--user", "nobody-here", "--json"])
    assert result.exit_code == 0, result.output
    logged = json_lines(result.stderr)
    assert any(entry["message"].startswith("memory layer ready") for entry in logged)
    assert json.loads(result.stdout)["user"] == "nobody-here"


def test_serve_hands_uvicorns_loggers_to_the_json_handler() -> None:
    assert uvicorn_options(Settings(log_format="json"))["log_config"] is None
    assert "log_config" not in uvicorn_options(Settings())  # text: uvicorn's own format, as before


def test_a_bad_log_format_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAM2VOICE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_turn_ids_stay_with_their_own_task() -> None:
    async def one(seen: list[str | None]) -> None:
        from graphs.tracing import current_turn

        with turn_scope("text"):
            await asyncio.sleep(0.01)
            seen.append(current_turn())

    async def both() -> list[str | None]:
        seen: list[str | None] = []
        await asyncio.gather(one(seen), one(seen))
        return seen

    first, second = asyncio.run(both())
    assert first and second and first != second
