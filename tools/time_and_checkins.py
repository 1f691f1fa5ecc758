"""Time awareness: ``create_reminder``, ``get_current_time``, ``schedule_checkin``,
``get_time_since_last_checkin``. Scheduled items live in :class:`tools.store.CoachingStore`;
the graph pops the due ones at the start of a turn (``store.pop_due``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, StringConstraints

from memories.errors import MemoryUnavailable
from tools.base import NoArgs, Result, call_key, clock_time, coaching_tool, duration
from tools.context import ToolContext
from tools.writes import schedule

MAX_MINUTES = 24 * 60
ShortNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class CreateReminderArgs(BaseModel):
    """Arguments of ``create_reminder``."""

    text: ShortNote = Field(description="What to remind the person of, as you would say it to them, "
                                        "e.g. 'take your medication'.")
    minutes_from_now: int = Field(ge=1, le=MAX_MINUTES, description="In how many minutes (1 to 1440).")


class ScheduleCheckinArgs(BaseModel):
    """Arguments of ``schedule_checkin``."""

    minutes_from_now: int = Field(10, ge=1, le=MAX_MINUTES, description="In how many minutes (1 to 1440).")
    about: ShortNote = Field("your progress", description="What to ask about, as a noun phrase, e.g. 'the essay'.")


def build(ctx: ToolContext) -> list[BaseTool]:
    """The time tools bound to ``ctx``."""

    async def create_reminder(args: CreateReminderArgs, user_id: str) -> Result:
        due = ctx.clock() + args.minutes_from_now * 60
        item, saved = await schedule(ctx, user_id, "reminder", due, args.text, key=call_key("reminder"))
        when = f"{duration(args.minutes_from_now * 60)} (at {clock_time(due)})"
        content = f"Okay, in {when} I'll remind you: {item.text}."
        return content, {"event": "reminder_created", "id": item.id, "text": item.text, "due_at": item.due_at,
                         "saved": saved}

    async def get_current_time(args: NoArgs, user_id: str) -> Result:
        now = ctx.clock()
        moment = datetime.fromtimestamp(now).astimezone()
        content = f"It's {clock_time(now)} on {moment:%A}, {moment.day} {moment:%B}."
        try:
            upcoming = await ctx.store.upcoming(user_id, limit=1)
        except MemoryUnavailable:  # the time is still the time
            upcoming = []
        if upcoming:
            what = "check-in" if upcoming[0].kind == "checkin" else "reminder"
            content += f" Your next {what} is in {duration(upcoming[0].due_at - now)}."
        return content, {"event": "current_time", "timestamp": now, "iso": moment.isoformat(timespec="seconds"),
                         "next_due_at": upcoming[0].due_at if upcoming else None}

    async def schedule_checkin(args: ScheduleCheckinArgs, user_id: str) -> Result:
        due = ctx.clock() + args.minutes_from_now * 60
        item, saved = await schedule(ctx, user_id, "checkin", due, args.about, key=call_key("checkin"))
        content = f"I'll check in with you in {duration(args.minutes_from_now * 60)} about {item.text}."
        return content, {
            "event": "checkin_scheduled", "id": item.id, "about": item.text, "due_at": item.due_at, "saved": saved}

    async def get_time_since_last_checkin(args: NoArgs, user_id: str) -> Result:
        now = ctx.clock()
        last = await ctx.store.last_checkin_at(user_id)
        if last is None:
            checkins = [i for i in await ctx.store.upcoming(user_id, limit=10) if i.kind == "checkin"]
            content = "We haven't had a check-in yet."
            if checkins:
                content += f" The first one is in {duration(checkins[0].due_at - now)}."
            return content, {"event": "no_checkin_yet", "next_checkin_at": checkins[0].due_at if checkins else None}
        elapsed = max(0.0, now - last)  # a clock set back must not read as negative time
        return (f"It's been {duration(elapsed)} since our last check-in.",
                {"event": "time_since_checkin", "seconds": elapsed, "last_checkin_at": last})

    return [
        coaching_tool(
            "create_reminder",
            "Schedule a reminder that is said to the person after a number of minutes. Use when they ask to be "
            "reminded, or need a nudge to switch tasks, take medication, eat, or leave on time.",
            CreateReminderArgs, create_reminder),
        coaching_tool(
            "get_current_time",
            "Tell the current local time and day, and how soon the next reminder or check-in is. Use when they "
            "ask the time or have lost track of time.",
            NoArgs, get_current_time),
        coaching_tool(
            "schedule_checkin",
            "Schedule a check-in: after a number of minutes you ask the person how it is going. Use when they "
            "start working on something and would like company or accountability, or to stay on track.",
            ScheduleCheckinArgs, schedule_checkin),
        coaching_tool(
            "get_time_since_last_checkin",
            "Tell how long ago the last check-in with the person happened. Use when they ask how long they "
            "have been at it, or to notice hyperfocus or a long gap.",
            NoArgs, get_time_since_last_checkin),
    ]
