"""Input validation shared by every memory element.

User ids are validated here and nowhere else; tag values are escaped by
RedisVL's filter builder in ``storage.UserScopedIndex``. Together they make
sure no input can reach another user's records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from memories.errors import InvalidInput

MAX_USER_ID_CHARS = 128
M = TypeVar("M", bound=BaseModel)


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a usable id, else raise :class:`InvalidInput`.

    Any printable text of 1-128 characters without leading or trailing spaces is
    accepted (unicode included): ids are never interpreted, only compared. Tabs,
    newlines, other control or separator characters are refused because RediSearch
    would treat them as token boundaries.
    """
    if not isinstance(user_id, str):
        raise InvalidInput(f"must be a string, got {type(user_id).__name__}", field="user_id")
    if not user_id:
        raise InvalidInput("must not be empty", field="user_id")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise InvalidInput(f"is {len(user_id)} characters; the limit is {MAX_USER_ID_CHARS}", field="user_id")
    if user_id != user_id.strip():
        raise InvalidInput("must not start or end with whitespace", field="user_id")
    if not user_id.isprintable():
        raise InvalidInput("must contain only printable characters (no tabs, newlines or control codes)",
                           field="user_id")
    return user_id


def user_tag(user_id: object) -> str:
    """The validated id as stored in ``user_id`` tags and keys: ASCII letters and digits only.

    RediSearch's query syntax has more special characters than any escaper keeps up
    with (a backtick slipped through RedisVL's), so ids are encoded instead of
    escaped: letters and digits stay, every other character (and ``Z`` itself)
    becomes ``Z<hex code point>Z``. The encoding is injective, so two ids can never
    share a tag, and readable for ordinary ids (``maya`` stays ``maya``).
    """
    return "".join(
        c if (c.isascii() and c.isalnum() and c != "Z") else f"Z{ord(c):x}Z" for c in validate_user_id(user_id)
    )


def validate_vector(vector: Sequence[float], *, dims: int, field: str = "embedding") -> list[float]:
    """Check an embedding has ``dims`` finite values."""
    if len(vector) != dims:
        raise InvalidInput(f"has dimension {len(vector)}, the index expects {dims}", field=field)
    values = [float(v) for v in vector]
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput("contains NaN or infinite values", field=field)
    return values


def parse(model: type[M], data: M | dict[str, Any]) -> M:
    """Validate ``data`` as ``model``, turning pydantic's error into :class:`InvalidInput`."""
    try:
        if isinstance(data, model):
            # Re-validate: a model built with model_construct() or mutated later
            # must not slip past the limits.
            return model.model_validate(data.model_dump())
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InvalidInput(f"{first['msg']}{more}", field=where) from None


def run_user_id(config: Mapping[str, Any] | None) -> str:
    """The validated user id of a LangChain/LangGraph run, ``config["configurable"]["user_id"]``:
    the one parser the graph's configuration and the tools share."""
    user_id = ((config or {}).get("configurable") or {}).get("user_id")
    if not isinstance(user_id, str):
        raise InvalidInput('missing config["configurable"]["user_id"]: every turn belongs to one person',
                           field="user_id")
    return validate_user_id(user_id)
