"""``sam2voice chat``: a terminal session with the companion, through the graph.

Nothing the person, the model or the memory says is read as Rich markup (it is escaped), and
input that is not valid text (undecodable bytes, lone surrogates, NULs) is replaced with U+FFFD
and reported rather than raised."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from graphs.session import CompanionSession, TurnResult
from graphs.tracing import turn_scope
from graphs.turn import PlanView
from memories.errors import InvalidInput

HELP = ("Type what's going on. Commands: [bold]/end[/] ends the session (I'll reflect on it), "
        "[bold]/yes[/] or [bold]/no[/] says whether my last suggestion helped, "
        "[bold]/rate 1-5 \\[comment][/] rates my last reply, [bold]/quit[/] leaves (the session resumes next time), "
        "[bold]/help[/] shows this.")
REPLACEMENT = "\ufffd"
INPUT_WARNING = f"Some of what you typed was not valid text; I replaced it with {REPLACEMENT}."
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")  # NULs, and lone surrogates (undecodable bytes under surrogateescape)


def replace_undecodable_stdin() -> None:
    """Decode stdin with ``errors="replace"``: an invalid UTF-8 byte becomes U+FFFD instead of a
    UnicodeDecodeError (strict) or a lone surrogate (surrogateescape, which Redis and pydantic refuse).
    The interactive ``input()`` decodes a terminal's line with these same settings."""
    stream = sys.stdin
    if isinstance(stream, io.TextIOWrapper):
        try:
            stream.reconfigure(errors="replace")
        except (ValueError, OSError):  # something was read already; `readable` still replaces surrogates
            pass


def readable(text: str) -> tuple[str, str | None]:
    """``text`` with NULs and lone surrogates replaced by U+FFFD, and the warning to give the
    person (once per line) when it holds any U+FFFD."""
    text = _NOT_TEXT.sub(REPLACEMENT, text)
    return text, (INPUT_WARNING if REPLACEMENT in text else None)


def require_readable(text: str) -> None:
    """Raises ``InvalidInput`` when nothing but replacement characters and whitespace is left
    (the session would take it for a message): there is nothing to answer."""
    if not text.replace(REPLACEMENT, "").strip():
        raise InvalidInput("none of it was valid text, so I couldn't read it; try typing it again",
                           field="message")


def jsonl_record(said: str, result: TurnResult) -> dict[str, Any]:
    """One turn as the machine-readable chat prints it (the README documents the keys)."""
    dumped = result.model_dump(mode="json", include={"plan", "understanding", "decision"})
    return {"said": said, "reply": result.reply, "act": result.act, "tool": result.tool,
            "settled": [{"id": s["id"], "outcome": s["outcome"]} for s in result.settled],
            "plan": dumped["plan"], "safety": result.safety, "used_memory_ids": result.used_memory_ids,
            "ended": result.ended, "notice": result.notice,
            "understanding": dumped["understanding"], "decision": dumped["decision"],
            "why": result.decision.suggested_why if result.decision else None}


async def run_jsonl(session: CompanionSession) -> None:
    """``chat --jsonl``: one message per stdin line in, exactly one JSON object per line out.
    ``/end`` ends the session; end of input leaves it open. Bad input is an ``error`` object."""
    replace_undecodable_stdin()
    await session.open()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        text, warned = readable(line.rstrip("\n"))
        if not text.strip():
            continue
        warning = {"input_warning": warned} if warned else {}
        try:
            require_readable(text)
            with turn_scope("end" if text.strip() == "/end" else "text"):  # the turn's id on its log lines
                result = await (session.end() if text.strip() == "/end" else session.send(text))
        except InvalidInput as exc:
            print(json.dumps({"said": text, "error": str(exc), "ended": False, **warning}), flush=True)
            continue
        print(json.dumps({**jsonl_record(text, result), **warning}, ensure_ascii=False), flush=True)
        if result.ended:
            return


def memory_panel(result: TurnResult) -> Panel:
    """Which memories the reply drew on, what was decided, and what was settled."""
    table = Table.grid(padding=(0, 1))
    decision = result.decision
    if decision is not None and decision.tool:
        because = escape(decision.suggested_why or decision.reason)
        table.add_row("[bold]chose[/]", f"{escape(decision.tool)} — {because}")
    for example in result.few_shot:
        verdict = "did not help" if example.contrast else example.outcome.value
        table.add_row("[bold]recalled[/]",
                      f"\"{escape(example.said[:60])}\" → {escape(example.tool or 'reply')} "
                      f"({escape(verdict)}, similarity {example.similarity:.2f})")
    for item in result.settled:
        table.add_row("[bold]learned[/]", f"last intervention {escape(str(item['outcome']).replace('_', ' '))}")
    table.add_row("[bold]memories used[/]", str(len(result.used_memory_ids)))
    return Panel(table, title="memory", title_align="left", border_style="dim")


def plan_panel(plan: PlanView) -> Panel:
    """The whole plan, done steps ticked, the current one marked."""
    lines = []
    for number, raw in enumerate(plan.steps, start=1):
        step = escape(raw)
        if plan.current is None or number < plan.current:
            lines.append(f"[green]✓[/] [dim]{number}. {step}[/]")
        elif number == plan.current:
            lines.append(f"[bold yellow]→ {number}. {step}[/]")
        else:
            lines.append(f"  {number}. {step}")
    title = Text(f"plan: {plan.task}" + (" · done!" if plan.done else ""))  # a str title is markup
    return Panel("\n".join(lines), title=title, title_align="left", border_style="green" if plan.done else "dim")


def show(console: Console, result: TurnResult, *, show_memory: bool, last_plan: PlanView | None = None) -> None:
    """Print one turn's result (the plan whenever it changed)."""
    for item in result.due:
        console.print(f"[magenta]⏰[/] {escape(item.message)}")
    if result.notice:
        console.print(f"[yellow]{escape(result.notice)}[/]")
    console.print(f"[bold cyan]sam ›[/] {escape(result.reply)}")
    if result.plan and result.plan != last_plan and not result.ended:
        console.print(plan_panel(result.plan))
    if show_memory and not result.ended:
        console.print(memory_panel(result))


async def run_chat(session: CompanionSession, console: Console, *, show_memory: bool) -> None:
    """Read lines until /end, /quit or end of input; every line is one graph turn."""
    replace_undecodable_stdin()
    ended = await session.open()
    if ended is not None:
        console.print(f"[dim]Your last session was idle, so I closed it. {escape(ended.reply)}[/]")
    console.print(f"[dim]{HELP}[/]")
    last_plan = PlanView.model_validate(saved) if (saved := session.values.get("plan")) else None
    while True:
        try:
            line = console.input("[bold green]you ›[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print("\n[dim]Bye for now. Your session will be here when you come back.[/]")
            return
        if not line:
            continue
        line, warning = readable(line)
        try:
            require_readable(line)
        except InvalidInput as exc:
            console.print(f"[yellow]{escape(str(exc))}[/]")
            continue
        if warning:
            console.print(f"[yellow]{escape(warning)}[/]")
        if line == "/help":
            console.print(f"[dim]{HELP}[/]")
            continue
        if line == "/quit":
            console.print("[dim]Bye for now. Your session will be here when you come back.[/]")
            return
        if line == "/end":
            with console.status("Reflecting on this session..."), turn_scope("end"):
                result = await session.end()
            show(console, result, show_memory=False)
            return
        try:
            with console.status("..."), turn_scope("text"):
                result = await session.send(line)
        except InvalidInput as exc:
            console.print(f"[yellow]{escape(str(exc))}[/]")
            continue
        show(console, result, show_memory=show_memory, last_plan=last_plan)
        last_plan = result.plan
