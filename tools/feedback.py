"""What the person tells us about progress and about us: ``log_micro_win`` (into
:class:`CurrentStateMemory`) and ``rate_response`` (into :class:`FeedbackMemory`)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, StringConstraints

from memories.base import MemoryElement
from memories.current_state import CurrentStateMemory
from memories.feedback import FeedbackMemory, NewFeedback
from memories.records import MAX_SHORT_CHARS, MAX_TAGS, MAX_TEXT_CHARS
from tools.base import Result, call_key, coaching_tool
from tools.context import ToolContext
from tools.wording import echo
from tools.writes import LogWin, SaveRating, apply_tool_write, write_or_queue

E = TypeVar("E", bound=MemoryElement[Any])
Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SHORT_CHARS)]


class LogWinArgs(BaseModel):
    """Arguments of ``log_micro_win``."""

    win: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        description="The small win in a few words, e.g. 'answered two emails' or 'got out of bed'.")


class RateArgs(BaseModel):
    """Arguments of ``rate_response``."""

    rating: int = Field(ge=1, le=5, description="How much the last reply helped: 1 (not at all) to 5 (a lot).")
    comment: Comment | None = Field(None, description="The person's own words about it, if they said any.")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS,
                            description="Short labels, e.g. 'too long', 'kind', 'breathing'.")


def _element(ctx: ToolContext, kind: type[E]) -> E:
    found = ctx.memory.get(kind)
    if found is None:
        raise ToolException(f"The {kind.name} memory is switched off, so this can't be saved.")
    return found


def build(ctx: ToolContext) -> list[BaseTool]:
    """The feedback tools bound to ``ctx``."""

    async def log_micro_win(args: LogWinArgs, user_id: str) -> Result:
        _element(ctx, CurrentStateMemory)
        write = LogWin(key=call_key("win"), user_id=user_id, win=args.win)

        async def save() -> bool:
            await apply_tool_write(write, ctx.store, ctx.memory)
            return True

        saved = await write_or_queue(ctx, write, save) is not None
        noted = "I've noted it, well done." if saved else "Well done."
        return f"That's a real win: {echo(args.win)}. {noted}", {"event": "win_logged", "win": args.win,
                                                                  "saved": saved}

    async def rate_response(args: RateArgs, user_id: str) -> Result:
        feedback = _element(ctx, FeedbackMemory)
        entry = NewFeedback(rating=args.rating, comment=args.comment, tags=args.tags)
        feedback_id = call_key("rating")

        async def save() -> float | None:
            await feedback.save(user_id, entry, record_id=feedback_id)
            return (await feedback.refresh_summary(user_id)).average_rating

        average = await write_or_queue(ctx, SaveRating(key=feedback_id, user_id=user_id, feedback=entry), save)
        if args.rating >= 4:
            content = "Thank you, I'm glad that helped. I'll keep doing what works for you."
        elif args.rating == 3:
            content = "Thanks for telling me. I'll keep adjusting to what works for you."
        else:
            content = "Thank you for being honest. I'll try a different way next time."
        return content, {"event": "rated", "rating": args.rating, "feedback_id": feedback_id,
                         "tags": entry.tags, "average_rating": average}

    return [
        coaching_tool(
            "log_micro_win",
            "Save a small win the person just had (finished a step, started something hard, took care of "
            "themselves) so it can be remembered and celebrated. Use whenever they report progress, however small.",
            LogWinArgs, log_micro_win),
        coaching_tool(
            "rate_response",
            "Store the person's rating of your last reply (1-5), with their comment and short tags. Use only "
            "when they rate or clearly judge a reply, e.g. 'that helped, 5' or 'too long'.",
            RateArgs, rate_response),
    ]
