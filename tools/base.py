"""What every coaching tool shares: how it is built, who it runs for, how its errors read.

A tool is a :class:`StructuredTool` around a handler ``async (args, user_id) -> (content,
artifact)``. The wrapper reads the user from ``config["configurable"]["user_id"]`` and
turns every failure into a :class:`ToolException` that the tool itself handles
(``handle_tool_error=True``), so a bad call or a Redis outage comes back to the model
as an error ``ToolMessage`` whatever ``ToolNode`` error setting the graph uses.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel, ValidationError

from memories.errors import MemoryLayerError, MemoryUnavailable
from memories.tracing import timing, within_turn
from memories.validation import run_user_id

if TYPE_CHECKING:
    from tools.context import ToolContext

log = logging.getLogger(__name__)

A = TypeVar("A", bound=BaseModel)
Result = tuple[str, dict[str, Any]]
Handler = Callable[[A, str], Awaitable[Result]]

UNAVAILABLE = "I can't reach my memory right now, so that didn't work. Please try again in a moment."
# A change that waits in the outbox is marked ``"saved": False`` in the tool's artifact; the
# person hears it once, in the turn's notice ("memory is offline... nothing you do is lost").

_KEYS = uuid.UUID("0c4f3f57-2a55-4d1e-8f0e-1f7a3d2b9c61")
# The running tool call's idempotency key. A context variable because a handler's signature is
# (args, user_id) for all 14 tools and only the writing ones need it; asyncio gives each tool
# call its own copy, so concurrent calls never see each other's.
_call_key: ContextVar[str | None] = ContextVar("tool_call_key", default=None)


def call_key(part: str = "") -> str:
    """The idempotency key of one write of the running tool call (``part`` tells apart a call's
    writes). Derived from the turn, the tool and its arguments: a re-run of the turn writes
    under the same key, so the write lands once. Outside a turn (no turn key) it is random."""
    return uuid.uuid5(_KEYS, f"{_call_key.get() or uuid.uuid4().hex}\x1f{part}").hex


def _turn_key(config: RunnableConfig | None, name: str, args: BaseModel, user_id: str) -> str | None:
    turn = ((config or {}).get("configurable") or {}).get("turn_key")
    return f"{user_id}\x1f{turn}\x1f{name}\x1f{args.model_dump_json()}" if turn else None


def user_from(config: RunnableConfig | None) -> str:
    """The validated user id of a run, from ``config["configurable"]["user_id"]``."""
    try:
        return run_user_id(config)  # memories.validation: the one parser, shared with the graph
    except MemoryLayerError as exc:
        raise ToolException(f"The user id of this run is not usable: {exc}") from exc


def explain_validation_error(error: ValidationError, tool: str = "the tool") -> str:
    """A validation error as a message a model can act on: which argument, what is wrong."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        problems.append(f"{where}: {item['msg']}")
    return f"Invalid arguments for {tool} ({'; '.join(problems)}). Call it again with corrected arguments."


def coaching_tool(name: str, description: str, schema: type[A], handler: Handler[A]) -> StructuredTool:
    """Build one coaching tool: validated ``schema`` arguments, the user from the run config,
    ``(content, artifact)`` output, and errors returned as error messages, never raised."""

    async def run(config: RunnableConfig, **kwargs: Any) -> Result:
        # The turn key names the turn in the logs (when no front end did) and the observer times the tool.
        with within_turn(((config or {}).get("configurable") or {}).get("turn_key")), timing("tool", name):
            return await run_for(config, **kwargs)

    async def run_for(config: RunnableConfig, **kwargs: Any) -> Result:
        user_id = user_from(config)
        args = schema.model_validate(kwargs)  # typed access, defaults filled in
        token = _call_key.set(_turn_key(config, name, args, user_id))
        try:
            return await handler(args, user_id)
        except ToolException:
            raise
        except MemoryUnavailable as exc:
            log.warning("%s: %s", name, exc)
            raise ToolException(UNAVAILABLE) from exc
        except MemoryLayerError as exc:  # no plan, limits reached, refused input
            raise ToolException(f"{name} could not do that: {exc}.") from exc
        except Exception as exc:
            # A person must never hear a crash; the log keeps the trace for a developer.
            log.exception("%s failed", name)
            raise ToolException(f"{name} failed unexpectedly ({type(exc).__name__}). Try something else.") from exc
        finally:
            _call_key.reset(token)

    return StructuredTool.from_function(
        coroutine=run,
        name=name,
        description=description,
        args_schema=schema,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=lambda error: explain_validation_error(error, name),
    )


async def ask_model(ctx: ToolContext, schema: type[A], prompt: list[tuple[str, str]]) -> A | None:
    """``ctx.chat_model``'s answer as ``schema``, or None when there is no model or it fails
    in any way (no structured output support, bad output, timeout): callers then use rules."""
    if ctx.chat_model is None:
        return None
    try:
        runnable = ctx.chat_model.with_structured_output(schema)
        raw = await asyncio.wait_for(runnable.ainvoke(prompt), ctx.model_timeout_s)
        return schema.model_validate(raw.model_dump() if isinstance(raw, BaseModel) else raw)
    except Exception as exc:  # small offline models often cannot do it; the rules always can
        # A validation error repeats the model's output, which can repeat the person's words: details at DEBUG.
        log.info("chat model gave no usable %s (%s); using rules", schema.__name__, type(exc).__name__)
        log.debug("chat model's %s failed: %s", schema.__name__, exc)
        return None


class NoArgs(BaseModel):
    """Arguments of a tool that takes none."""


# Words for times, shared by the tools that schedule things.

def clock_time(ts: float) -> str:
    """``ts`` as local wall-clock time, e.g. ``3:05 PM``."""
    moment = datetime.fromtimestamp(ts).astimezone()
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def duration(seconds: float) -> str:
    """A duration in words: ``less than a minute``, ``12 minutes``, ``2 hours and 5 minutes``, ``3 days``."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes >= 2 * 24 * 60:
        return f"{minutes // (24 * 60)} days"
    hours, rest = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if rest:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " and ".join(parts)
