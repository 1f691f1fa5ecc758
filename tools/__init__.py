"""LangChain tools of the coaching repertoire.

``build_tools(ctx)`` returns the 14 tools bound to a :class:`tools.context.ToolContext`;
``tools.catalog`` describes them for the agent's policy; ``tools.store.CoachingStore``
keeps their state in Redis.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from tools import feedback, reframe, regulation, steps, time_and_checkins
from tools.context import ToolContext

#: Every tool name, in a fixed order.
TOOL_NAMES: tuple[str, ...] = (
    "create_microsteps", "get_current_step", "mark_step_complete", "create_reminder", "get_current_time",
    "schedule_checkin", "get_time_since_last_checkin", "log_micro_win", "start_breathing_exercise",
    "sensory_check", "grounding_exercise", "suggest_break", "reframe_thought", "rate_response",
)


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    """The 14 coaching tools bound to ``ctx``, in :data:`TOOL_NAMES` order."""
    modules = (steps, time_and_checkins, feedback, regulation, reframe)
    built = {t.name: t for module in modules for t in module.build(ctx)}
    return [built[name] for name in TOOL_NAMES]


__all__ = ["TOOL_NAMES", "ToolContext", "build_tools"]
