"""Reading an evaluation's JSON file (conversations, personas) into its typed model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from memories.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def load_json_model(path: Path, model: type[M], *, field: str) -> M:
    """``path`` read as JSON and validated as ``model``; errors say which file, where in it,
    and what is wrong (``field`` names the option that gave the path)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}", field=field) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}", field=field) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise InvalidInput(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))", field=field) from None
