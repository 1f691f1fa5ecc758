"""Explicit requests that name a tool ("what time is it?", "/rate 4", "remind me to ...").

When a person asks for something specific, the agent does that instead of choosing an
intervention; these patterns are deliberately narrow (a miss falls through to the normal
choice, which is harmless; a false hit would ignore what the person needed).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from tools.catalog import default_args

_MINUTES = r"(?:\d{1,3}|an?|one|two|three|five|ten|fifteen|twenty|thirty)\s*(?:min(?:ute)?s?|h(?:ou)?rs?|hours?)"


class Intent(BaseModel):
    """A tool the person asked for, with its arguments."""

    tool: str = Field(description="The tool to run.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    intervention: bool = Field(False, description="True when the request is itself an intervention to learn from.")


def detect_intent(message: str) -> Intent | None:
    """The tool a message explicitly asks for, if any."""
    text = message.strip()
    low = text.lower()
    if m := re.match(r"^/rate\s+([1-5])\b\s*(.*)$", low):
        comment = text[m.end(1):].strip() or None
        return Intent(tool="rate_response", args={"rating": int(m[1]), "comment": comment})
    rated = r"\b(?:i(?:'d)? rate (?:that|this|it)|rating:?)\s*(?:a\s+)?([1-5])(?:\s*(?:/|out of)\s*5)?\b"
    if m := re.search(rated, low):
        return Intent(tool="rate_response", args={"rating": int(m[1])})
    if re.search(r"\bwhat(?:'s| is)? the time\b|\bwhat time is it\b|\bcurrent time\b", low):
        return Intent(tool="get_current_time")
    if re.search(r"\b(?:how long|how much time)\b.*\bsince\b.*\bcheck[- ]?in\b", low):
        return Intent(tool="get_time_since_last_checkin")
    if re.search(r"^/done$|\b(?:done|finished|completed) (?:with )?(?:that|this|the|my) step\b|\bstep (?:is )?done\b",
                 low):
        return Intent(tool="mark_step_complete")
    if re.search(r"\bwhat(?:'s| is) (?:my|the) (?:next|current) step\b|\bwhere was i\b|\bwhich step\b|^/step$", low):
        return Intent(tool="get_current_step")
    # Which tool from the pattern; its arguments (what, in how long) from the tool catalogue.
    if re.search(r"\bremind me\b.+\bin " + _MINUTES + r"\b", low):
        return Intent(tool="create_reminder", args=default_args("create_reminder", message=text, task=None))
    if re.search(r"\bcheck (?:in )?(?:on|with) me in " + _MINUTES + r"\b", low):
        return Intent(tool="schedule_checkin", args=default_args("schedule_checkin", message=text, task=None))
    return None
