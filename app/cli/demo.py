"""``sam2voice demo``: a simulated person over several sessions, offline, through the real graph.

It shows the product's point: at first the companion guesses from general knowledge; as
outcomes come in, the few-shot context fills with what worked for *this* person and the
choice of intervention follows it. The person is simulated with the learning
evaluation's rules (they are helped with a fixed probability per tool and situation, and
say so in words that the graph has to read).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from app.eval.learning import Persona, Situation, success_probability
from graphs.policy import turn_rng
from graphs.session import CompanionSession
from memories.reflections import ReflectionMemory
from memories.registry import MemoryRegistry

DEMO_USER = "demo-sam"
PERSONA = Persona(
    user_id=DEMO_USER,
    profile={"name": "Sam", "diagnosis": "ADHD", "diagnosis_source": "SELF", "consent_diagnosis_in_prompts": True},
    situations=[
        Situation(kind="starting", utterances=[
            "I can't get myself to start cleaning my room",
            "The laundry pile is huge and I keep avoiding it",
            "I need to start my tax forms but I just can't",
        ], success={"create_microsteps": 0.9, "suggest_break": 0.15, "start_breathing_exercise": 0.1}),
        Situation(kind="overloaded", utterances=[
            "Everything is too loud and I'm overwhelmed",
            "There's too much noise and light, I can't think",
            "I'm overloaded and irritable and I don't know why",
        ], success={"sensory_check": 0.9, "start_breathing_exercise": 0.25, "suggest_break": 0.3}),
    ],
    success_replies=["That helped, I got started.", "Okay, that worked, I'm calmer now.",
                     "Thanks, I did the first part."],
    failure_replies=["That didn't help, I gave up.", "No, I ended up on my phone instead."],
)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def run_demo(session_factory: Callable[[str], CompanionSession], console: Console, *, sessions: int = 5,
                   turns: int = 4, seed: int = 3) -> list[float]:
    """Run the simulated person; print each session; return the success rate per session."""
    rates: list[float] = []
    for number in range(sessions):
        session = session_factory(f"demo:{seed}:{number}")
        await session.open()
        table = Table(title=f"Session {number + 1}", title_justify="left", show_lines=False)
        for column, width in (("Sam said", 26), ("recalled (✓ helped, ✗ didn't)", 22), ("chose", 17),
                              ("companion said", 34), ("result", 9)):
            table.add_column(column, max_width=width, overflow="fold")
        helped_count = 0
        for turn in range(turns):
            pick = turn_rng(seed, number, turn, "situation")
            situation = pick.choice(PERSONA.situations)
            said = pick.choice(situation.utterances)
            result = await session.send(said)
            tool = result.decision.suggested if result.decision else None
            helped = turn_rng(seed, number, turn, "draw").random() < success_probability(situation, tool)
            helped_count += helped
            answer = pick.choice(PERSONA.success_replies if helped else PERSONA.failure_replies)
            reply = await session.send(answer)
            recalled = [f"{'✗' if e.contrast else '✓'} {e.tool or 'reply'}" for e in result.few_shot[:3]]
            chose = f"{tool or '-'}{' ★' if result.decision and result.decision.from_memory else ''}"
            read = "" if reply.evidence and reply.evidence.outcome else "\n[dim](unread)[/]"
            mark = "[green]helped[/]" if helped else "[red]didn't[/]"
            table.add_row(_short(said, 60), "\n".join(recalled) or "[dim]nothing yet[/]", chose,
                          _short(result.reply, 90), mark + read)
        ending = await session.end()
        rates.append(helped_count / turns)
        console.print(table)
        console.print(f"[bold]Helped {helped_count}/{turns}.[/] {ending.reply}\n")
    return rates


async def show_learned(registry: MemoryRegistry, console: Console) -> None:
    """What the companion now remembers about the demo person."""
    reflections = registry.get(ReflectionMemory)
    if reflections is not None:
        for item in await reflections.recent(DEMO_USER, limit=5):
            console.print(f"  • {item.insight} [dim](seen {item.support}×)[/]")
