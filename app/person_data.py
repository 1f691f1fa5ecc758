"""A person's data in their hands: everything remembered about them (export), a readable
view of it, and forgetting them. One service, used by ``sam2voice memory export/forget``
and by the web endpoints (``/api/data``, ``/api/memories``) so both say the same thing.

What is about one person, and who deletes it:

* memories (profile, current state, interventions and their counters, the person's
  contributions to the population pool, reflections, feedback): ``MemoryRegistry.export`` /
  ``forget`` (forgetting subtracts their contributions from the pool first);
* coaching state (plan, check-ins, reminders, safety events, applied writes):
  ``CoachingStore.export`` / ``forget``;
* conversations (session directory, every thread's checkpoints): ``SessionDirectory``;
* with ``accounts``: the account, passkeys, sessions and failed sign-in counters
  (``AccountStore.forget``); with ``audit``: the audit log (``AuditLog.forget``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.accounts import AccountStore
from app.audit import AuditLog
from graphs.outbox import Outbox
from graphs.session import SessionDirectory
from memories.current_state import CurrentState, CurrentStateMemory
from memories.errors import InvalidInput, RecordNotFound
from memories.interventions import Intervention, InterventionMemory
from memories.outcomes import Outcome
from memories.profile import Profile, ProfileMemory
from memories.ranking import ToolStats
from memories.reflections import Reflection, ReflectionMemory
from memories.registry import MemoryRegistry
from memories.validation import validate_user_id
from tools.store import MAX_SCHEDULED, CoachingStore, DueItem, Plan, SafetyEvent

#: How many past interventions and reflections ``memories`` shows (the export has them all).
SHOWN = 50


class CoachingExport(BaseModel):
    """The person's coaching state as exported."""

    plan: dict[str, Any] | None = Field(None, description="The current step plan, if any.")
    scheduled: list[dict[str, Any]] = Field(default_factory=list, description="Check-ins and reminders to come.")
    last_checkin_at: float | None = Field(None, description="When the last check-in reached the person.")
    safety_events: list[dict[str, Any]] = Field(default_factory=list, description="Safety replies, newest first.")


class PersonExport(BaseModel):
    """Everything remembered about the person: the same JSON as ``sam2voice memory export``.

    One list of stored records per memory element (the built-in five below, plus any other
    element that is enabled), the coaching state, and the ids of the person's conversations."""

    model_config = ConfigDict(extra="allow")

    profile: list[dict[str, Any]] = Field(default_factory=list, description="The profile document.")
    interventions: list[dict[str, Any]] = Field(default_factory=list,
                                                description="Every intervention, plus the per-tool counters.")
    reflections: list[dict[str, Any]] = Field(default_factory=list, description="Insights about what helps.")
    feedback: list[dict[str, Any]] = Field(default_factory=list, description="Ratings and the feedback summary.")
    current_state: list[dict[str, Any]] = Field(default_factory=list, description="The current-state document.")
    coaching: CoachingExport = Field(default_factory=CoachingExport)
    sessions: list[str] = Field(default_factory=list, description="The conversation threads kept.")


class PersonMemories(BaseModel):
    """What the companion remembers about the person, readably (most recent first, bounded)."""

    profile: Profile | None = Field(None, description="The profile, if one was stored.")
    current_state: CurrentState | None = Field(None, description="How they were doing, last seen.")
    reflections: list[Reflection] = Field(default_factory=list, description=f"Most recent insights (up to {SHOWN}).")
    interventions: list[Intervention] = Field(default_factory=list,
                                              description=f"Past interventions and their outcomes, newest first "
                                                          f"(up to {SHOWN}).")
    success_rates: dict[str, ToolStats] = Field(default_factory=dict, description="Settled outcomes per tool.")
    plan: Plan | None = Field(None, description="The current step plan.")
    scheduled: list[DueItem] = Field(default_factory=list, description="Check-ins and reminders to come, soonest "
                                                                       "first.")
    safety_events: list[SafetyEvent] = Field(default_factory=list, description="Safety replies, newest first.")


class PersonData:
    """Export, show and forget one person's data across every store."""

    def __init__(self, registry: MemoryRegistry, store: CoachingStore, *, checkpointer: Any = None,
                 accounts: AccountStore | None = None, audit: AuditLog | None = None,
                 outbox: Outbox | None = None) -> None:
        self.registry = registry
        self.outbox = outbox
        self.store = store
        self.checkpointer = checkpointer
        self.accounts = accounts
        self.audit = audit
        self.directory = SessionDirectory(registry.backend.client, registry.backend.settings.namespace)

    async def export(self, user_id: str) -> dict[str, Any]:
        """Everything remembered about the person (``PersonExport`` as plain data)."""
        validate_user_id(user_id)
        data: dict[str, Any] = dict(await self.registry.export(user_id))
        data["coaching"] = await self.store.export(user_id)
        data["sessions"] = await self.directory.threads(user_id)
        return data

    async def memories(self, user_id: str, limit: int = SHOWN) -> PersonMemories:
        """The readable view: profile, state, reflections, interventions, plan, scheduled, safety."""
        validate_user_id(user_id)
        out = PersonMemories()
        if (profile := self.registry.get(ProfileMemory)) is not None:
            out.profile = await profile.get(user_id)
        if (state := self.registry.get(CurrentStateMemory)) is not None:
            out.current_state = await state.get(user_id)
        if (reflections := self.registry.get(ReflectionMemory)) is not None:
            out.reflections = await reflections.recent(user_id, limit=limit)
        if (interventions := self.registry.get(InterventionMemory)) is not None:
            out.interventions = await interventions.recent(user_id, limit=limit)
            out.success_rates = await interventions.success_rates(user_id)
        out.plan = await self.store.plan(user_id)
        out.scheduled = await self.store.upcoming(user_id, limit=MAX_SCHEDULED)
        out.safety_events = await self.store.safety_events(user_id)
        return out

    async def contributes(self, user_id: str) -> bool:
        """Whether the person's outcomes count in the population pool (on unless they said no)."""
        if (profile := self.registry.get(ProfileMemory)) is None:
            return True
        stored = await profile.get(user_id)
        return stored.consent_pooled_learning if stored is not None else Profile().consent_pooled_learning

    async def update_profile(self, user_id: str, changes: dict[str, Any]) -> Profile:
        """Change the profile; turning pooled learning off also takes back, exactly, everything
        the person had added to the population pool (``memories.population``)."""
        profile = self.registry.get(ProfileMemory)
        if profile is None:
            raise InvalidInput("profiles are switched off", field="profile")
        updated: Profile = await profile.update(user_id, changes)
        withdrawn = changes.get("consent_pooled_learning") is False
        if withdrawn and (interventions := self.registry.get(InterventionMemory)) is not None:
            await interventions.population.retract(user_id)
        return updated

    async def correct_outcome(self, user_id: str, intervention_id: str, outcome: Outcome) -> tuple[Outcome,
                                                                                                    Intervention]:
        """Correct how an intervention went; returns the previous outcome and the record.
        The counters, and the person's pool contribution if they agreed to one, move with it."""
        interventions = self.registry.get(InterventionMemory)
        if interventions is None:
            raise RecordNotFound("interventions are switched off")
        previous = await interventions.settle(user_id, intervention_id, outcome,
                                              contribute=await self.contributes(user_id))
        return previous, await interventions.get(user_id, intervention_id)

    async def forget(self, user_id: str) -> dict[str, int]:
        """Delete everything about the person; counts per store. Conversations need the
        checkpointer; the account and audit log are deleted when those stores were given."""
        validate_user_id(user_id)
        counts: dict[str, int] = {}
        if self.outbox is not None:  # first: a write waiting for Redis must not bring anything back
            counts["queued_writes"] = self.outbox.drop(user_id)
        counts.update(await self.registry.forget(user_id))
        counts["coaching"] = await self.store.forget(user_id)
        if self.checkpointer is not None:
            counts["sessions"] = await self.directory.forget(user_id, self.checkpointer)
        if self.accounts is not None:
            counts["account"] = await self.accounts.forget(user_id)
        if self.audit is not None:
            counts["audit"] = await self.audit.forget(user_id)
        return counts
