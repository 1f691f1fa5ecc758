"""``sam2voice demo``: a short, offline tour of the memory layer for one simulated person.

(The companion graph issue replaces this with a simulated coaching session.)
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from memories.current_state import CurrentStateMemory
from memories.feedback import FeedbackMemory
from memories.interventions import FewShotExample, InterventionMemory
from memories.profile import ProfileMemory
from memories.reflections import ReflectionMemory
from memories.registry import MemoryRegistry

DEMO_USER = "demo-sam"
SITUATION = "I have to clean my room but I just can't get started"

# (what the person said, what the companion did, tool, how it went)
SESSION_ONE = [
    ("I can't start cleaning, it's too much", "Let's take a five minute break first.", "suggest_break", "distracted"),
    ("The kitchen is a mess and I'm frozen", "Step one: put just the cups in the sink.", "create_microsteps",
     "task_completed"),
    ("Everything is too loud and I'm overwhelmed", "Let's breathe in for 4 and out for 6, together.",
     "start_breathing_exercise", "re_engaged"),
    ("I keep avoiding the laundry pile", "Just pick up three socks. That's the whole step.", "create_microsteps",
     "task_progress"),
    ("I can't make myself start my homework", "How about a break and a snack?", "suggest_break", "abandoned"),
]


def _table(title: str, examples: list[FewShotExample]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("rank")
    table.add_column("they said", max_width=38)
    for column in ("tool", "outcome", "similarity", "tool success", "score"):
        table.add_column(column, no_wrap=True)
    for rank, e in enumerate(examples, 1):
        i = e.intervention
        table.add_row("contrast" if e.contrast else str(rank), i.user_context, i.tool_name or "-",
                      i.outcome.value, f"{e.similarity:.2f}", f"{e.success_rate:.0%}", f"{e.score:.2f}")
    return table


async def run_demo(registry: MemoryRegistry, console: Console) -> None:
    """Walk one simulated person through recording, settling and retrieving interventions."""
    interventions = registry.get(InterventionMemory)
    if interventions is None:
        console.print("[yellow]The interventions element is switched off; nothing to demo.[/]")
        return
    await registry.forget(DEMO_USER)
    console.rule(f"Memory demo for [bold]{DEMO_USER}[/] (offline)")
    if (profile := registry.get(ProfileMemory)) is not None:
        await profile.update(DEMO_USER, {"name": "Sam", "diagnosis": "ADHD", "diagnosis_source": "SELF",
                                         "consent_diagnosis_in_prompts": True,
                                         "preferences": {"checkin_interval_minutes": 10}})
    console.print("1. Session one: the companion tries five interventions; all start as [italic]pending[/].")
    stored = await interventions.record_many(
        DEMO_USER, [{"user_context": said, "text": did, "tool_name": tool} for said, did, tool, _ in SESSION_ONE]
    )
    before = await interventions.similar_successes(DEMO_USER, SITUATION, contrast=True)
    console.print(_table(f'Few-shot for "{SITUATION}" before any outcome is known', before))

    console.print("2. The person's next messages settle each outcome.")
    for record, (*_, outcome) in zip(stored, SESSION_ONE, strict=True):
        await interventions.settle(DEMO_USER, record.id, outcome)
    rates = await interventions.success_rates(DEMO_USER)
    console.print("   Observed success per tool: " + ", ".join(
        f"{tool} {s.success_rate:.0%} (n={s.settled})" for tool, s in sorted(rates.items())))
    after = await interventions.similar_successes(DEMO_USER, SITUATION, contrast=True)
    console.print(_table("Few-shot after outcomes: what worked rises, what failed is kept only as contrast", after))

    console.print("3. Reflect, rate, update state.")
    if (reflections := registry.get(ReflectionMemory)) is not None:
        await reflections.remember(DEMO_USER, {"insight": "Tiny concrete first steps get Sam moving; breaks derail"})
        saved = await reflections.remember(DEMO_USER, {"insight": "Tiny concrete first steps get Sam moving; "
                                                                  "breaks derail him"})
        console.print(f"   A near-duplicate insight merged: {saved.merged} (support {saved.reflection.support})")
    if (feedback := registry.get(FeedbackMemory)) is not None:
        await feedback.save(DEMO_USER, {"rating": 5, "tags": ["microsteps"], "comment": "the cups step was perfect"})
        await feedback.save(DEMO_USER, {"rating": 2, "tags": ["breaks"], "comment": "breaks make me lose it"})
        await feedback.refresh_summary(DEMO_USER)
    if (state := registry.get(CurrentStateMemory)) is not None:
        await state.update(DEMO_USER, {"mood": "focused", "energy": "medium", "focus_areas": ["clean the room"]})
        await state.add_win(DEMO_USER, "Put the cups in the sink")

    console.print("4. What the next turn's prompt receives from memory:")
    sections = await registry.load(DEMO_USER, {"message": SITUATION})
    for name, section in sections.items():
        if section.prompt:
            console.print(f"[bold cyan]{name}[/]\n{section.prompt}")
    console.rule("done")
