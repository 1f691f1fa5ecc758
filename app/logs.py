"""How every sam2voice process logs: one function, ``configure_logging``, for the CLI and
each ``serve`` worker.

* ``SAM2VOICE_LOG_FORMAT=text`` (the default): ``LEVEL logger: message``.
* ``SAM2VOICE_LOG_FORMAT=json``: one JSON object per line (``ts``, ``level``, ``logger``,
  ``message``, ``turn``, and ``exc`` with the traceback), for a log shipper.

Either way a line logged during a turn carries the turn's id (``graphs.tracing.current_turn``).
Privacy: nothing logged at INFO or above carries what a person said; text goes to DEBUG, if
anywhere.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Literal

from app.settings import Settings
from graphs.tracing import current_turn

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s%(turn_suffix)s"
_OURS = "_sam2voice_handler"  # marks the handler configure_logging installed (replaced, never stacked)


class TurnFilter(logging.Filter):
    """Stamps each record with the id of the turn it was logged in (``record.turn``, or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        turn = current_turn()
        record.turn = turn
        record.turn_suffix = f" [turn {turn}]" if turn else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "turn": getattr(record, "turn", None),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test runner may swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def formatter(log_format: LogFormat, *, timestamps: bool = False) -> logging.Formatter:
    """The formatter of ``log_format`` (text lines can start with the time, as in chat.log)."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(("%(asctime)s " if timestamps else "") + TEXT_FORMAT, defaults={"turn_suffix": ""})


def configure_logging(settings: Settings, *, level: str | None = None, stream: IO[str] | None = None) -> None:
    """Send the root logger's records to stderr (or ``stream``) in ``settings.log_format``, with
    turn ids, and set the root level to ``level`` (default ``settings.log_level``).

    Calling it again reuses its own handler (a level set on it stays) and never stacks a second
    one; handlers others installed (pytest's, chat's log file) are left alone."""
    root = logging.getLogger()
    ours = next((h for h in root.handlers if getattr(h, _OURS, False)), None)
    if ours is None or stream is not None:
        if ours is not None:
            root.removeHandler(ours)
        ours = logging.StreamHandler(stream) if stream is not None else StderrHandler()
        setattr(ours, _OURS, True)
        ours.addFilter(TurnFilter())
        root.addHandler(ours)
    ours.setFormatter(formatter(settings.log_format))
    root.setLevel(level or settings.log_level)
