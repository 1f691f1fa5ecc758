"""``sam2voice memory inspect --user ID``: the debugging view of one person's memory.

How many records each element holds about them, their recent interventions with outcomes
and reply-quality scores, results per tool, their reflections, and how big each element's
index is (over everyone). ``--json`` prints the same as one object.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from redisvl.query.filter import Tag
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memories.interventions import InterventionMemory
from memories.outcomes import Outcome
from memories.ranking import ToolStats
from memories.reflections import Reflection, ReflectionMemory
from memories.registry import MemoryRegistry
from memories.stats import IndexSize, index_sizes, person_counts
from memories.validation import validate_user_id

SHOWN_CHARS = 80  # of what was said and replied, per row


class InspectedIntervention(BaseModel):
    """One past intervention as the inspection shows it."""

    id: str
    tool: str | None = Field(description="The tool, or None for a plain reply.")
    outcome: Outcome
    quality: float | None = Field(description="Reply-quality score 0-1 (None: not scored).")
    said: str = Field(description=f"What the person said (first {SHOWN_CHARS} characters).")
    reply: str = Field(description=f"What the companion said (first {SHOWN_CHARS} characters).")
    created_at: float
    settled_at: float | None


class MemoryInspection(BaseModel):
    """What ``memory inspect`` shows about one person."""

    user: str
    counts: dict[str, int] = Field(description="Records per memory element about this person.")
    pending: int = Field(0, description="Interventions still waiting for an outcome.")
    interventions: list[InspectedIntervention] = Field(description="The newest interventions.")
    success_rates: dict[str, ToolStats] = Field(description="Settled results per tool.")
    reflections: list[Reflection] = Field(description="The most recently seen insights.")
    indexes: list[IndexSize] = Field(description="Each element's index over everyone.")


async def inspect_person(registry: MemoryRegistry, user_id: str, *, limit: int = 10) -> MemoryInspection:
    """Read the inspection of ``user_id`` (nothing is written)."""
    user_id = validate_user_id(user_id)
    found = MemoryInspection(user=user_id, counts=await person_counts(registry, user_id), interventions=[],
                             success_rates={}, reflections=[], indexes=await index_sizes(registry))
    if (interventions := registry.get(InterventionMemory)) is not None:
        found.pending = await interventions.index.count(user_id, Tag("outcome") == Outcome.PENDING.value)
        found.interventions = [
            InspectedIntervention(id=i.id, tool=i.tool_name, outcome=i.outcome, quality=i.quality,
                                  said=i.user_context[:SHOWN_CHARS], reply=i.text[:SHOWN_CHARS],
                                  created_at=i.created_at, settled_at=i.settled_at)
            for i in await interventions.recent(user_id, limit=limit)]
        found.success_rates = await interventions.success_rates(user_id)
    if (reflections := registry.get(ReflectionMemory)) is not None:
        found.reflections = await reflections.recent(user_id, limit=limit)
    return found


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def show_inspection(found: MemoryInspection, console: Console) -> None:
    """The inspection as Rich tables (everything stored is escaped, never read as markup)."""
    counts = Table(title=f"memory of {escape(found.user)}", title_justify="left")
    counts.add_column("element")
    counts.add_column("records", justify="right")
    for element, count in found.counts.items():
        counts.add_row(element, str(count))
    counts.add_row("[dim]interventions pending[/]", str(found.pending))
    console.print(counts)

    recent = Table(title="recent interventions (newest first)", title_justify="left")
    for column in ("when", "tool", "outcome", "quality", "said", "reply"):
        recent.add_column(column, overflow="fold")
    for i in found.interventions:
        quality = "-" if i.quality is None else f"{i.quality:.2f}"
        recent.add_row(_when(i.created_at), escape(i.tool or "(reply)"), i.outcome.value, quality, escape(i.said),
                       escape(i.reply))
    console.print(recent)

    tools = Table(title="results per tool", title_justify="left")
    for column in ("tool", "settled", "success rate"):
        tools.add_column(column, justify="left" if column == "tool" else "right")
    for name, stats in sorted(found.success_rates.items()):
        tools.add_row(escape(name), str(stats.settled), f"{stats.success_rate:.2f}")
    console.print(tools)

    insights = Table(title="reflections (most recently seen first)", title_justify="left")
    for column in ("last seen", "support", "insight"):
        insights.add_column(column, overflow="fold")
    for r in found.reflections:
        insights.add_row(_when(r.last_seen), str(r.support), escape(r.insight))
    console.print(insights)

    indexes = Table(title="indexes (everyone)", title_justify="left")
    for column in ("element", "index", "documents", "index MB", "vector MB"):
        indexes.add_column(column, justify="right" if "MB" in column or column == "documents" else "left")
    for size in found.indexes:
        indexes.add_row(size.element, size.index, str(size.documents), f"{size.index_mb:.3f}", f"{size.vector_mb:.3f}")
    console.print(indexes)
