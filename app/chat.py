"""``sam2voice chat``: a terminal session with the companion, through the graph."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from graphs.session import CompanionSession, TurnResult
from memories.errors import InvalidInput

HELP = ("Type what's going on. Commands: [bold]/end[/] ends the session (I'll reflect on it), "
        "[bold]/rate 1-5 \\[comment][/] rates my last reply, [bold]/quit[/] leaves (the session resumes next time), "
        "[bold]/help[/] shows this.")


def memory_panel(result: TurnResult) -> Panel:
    """Which memories the reply drew on, what was decided, and what was settled."""
    table = Table.grid(padding=(0, 1))
    decision = result.decision or {}
    if decision.get("tool"):
        learned = " (from your history)" if decision.get("from_memory") else ""
        table.add_row("[bold]chose[/]", f"{decision['tool']}{learned}: {decision.get('reason', '')}")
    for example in result.few_shot:
        verdict = "did not help" if example["contrast"] else example["outcome"]
        table.add_row("[bold]recalled[/]", f"\"{example['said'][:60]}\" → {example['tool'] or 'reply'} "
                      f"({verdict}, similarity {example['similarity']:.2f})")
    for item in result.settled:
        table.add_row("[bold]learned[/]", f"last intervention {item['outcome'].replace('_', ' ')}")
    table.add_row("[bold]memories used[/]", str(len(result.used_memory_ids)))
    return Panel(table, title="memory", title_align="left", border_style="dim")


def show(console: Console, result: TurnResult, *, show_memory: bool) -> None:
    """Print one turn's result."""
    for item in result.due:
        console.print(f"[magenta]⏰ {item['kind']}:[/] {item['text']}")
    if result.notice:
        console.print(f"[yellow]{result.notice}[/]")
    console.print(f"[bold cyan]sam ›[/] {result.reply}")
    if show_memory and not result.ended:
        console.print(memory_panel(result))


async def run_chat(session: CompanionSession, console: Console, *, show_memory: bool) -> None:
    """Read lines until /end, /quit or end of input; every line is one graph turn."""
    ended = await session.open()
    if ended is not None:
        console.print(f"[dim]Your last session was idle, so I closed it. {ended.reply}[/]")
    console.print(f"[dim]{HELP}[/]")
    while True:
        try:
            line = console.input("[bold green]you ›[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print("\n[dim]Bye for now. Your session will be here when you come back.[/]")
            return
        if not line:
            continue
        if line == "/help":
            console.print(f"[dim]{HELP}[/]")
            continue
        if line == "/quit":
            console.print("[dim]Bye for now. Your session will be here when you come back.[/]")
            return
        if line == "/end":
            with console.status("Reflecting on this session..."):
                result = await session.end()
            show(console, result, show_memory=False)
            return
        try:
            with console.status("..."):
                result = await session.send(line)
        except InvalidInput as exc:
            console.print(f"[yellow]{exc}[/]")
            continue
        show(console, result, show_memory=show_memory)
