"""Step 1, load context: what every memory element knows about this person, plus due
check-ins and reminders. Queued writes from an earlier outage are flushed first."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from graphs.configuration import Configuration
from graphs.deps import CompanionDeps
from graphs.nodes.common import MEMORY_OFFLINE_NOTICE, last_human_text, ms_since
from graphs.state import CompanionState
from graphs.tracing import traced
from graphs.understanding.safety import country_of
from memories.errors import MemoryUnavailable
from memories.interventions import InterventionMemory
from memories.profile import Diagnosis, Profile
from memories.records import MAX_TEXT_CHARS, MemorySection, TurnInputs
from tools.store import DueItem

log = logging.getLogger(__name__)
TITLES = {"profile": "About them", "current_state": "How they are doing", "reflections": "What you have learned",
          "feedback": "Their feedback"}


def style_flags(profile: Profile | None) -> dict[str, bool]:
    """Reply style from the profile; the diagnosis counts only with the person's consent."""
    if profile is None:
        return {"autism": False, "literal_language": False}
    autism = profile.consent_diagnosis_in_prompts and profile.diagnosis in (Diagnosis.AUTISM, Diagnosis.BOTH)
    literal = autism or profile.preferences.communication_style.value == "literal"
    return {"autism": autism, "literal_language": literal}


def render_context(sections: list[MemorySection], due: list[DueItem]) -> str:
    """The memory sections as one prompt block, titled, empty ones left out."""
    blocks = [f"{TITLES.get(s.element, s.element)}:\n{s.prompt}" for s in sections if s.prompt]
    if due:
        blocks.append("Due now:\n" + "\n".join(f"- {d.message}" for d in due))
    return "\n\n".join(blocks)


@traced("load_context")
async def load_context(state: CompanionState, config: RunnableConfig, *, deps: CompanionDeps) -> dict[str, Any]:
    """Load every element's section (except interventions: the next step retrieves those)."""
    start = time.perf_counter()
    user = Configuration.from_runnable_config(config).user_id
    registry = deps.memory.registry
    update: dict[str, Any] = {"turn": state.get("turn", 0) + 1, "last_activity": time.time(),
                              "degraded": False, "notice": None, "ended": False}
    try:
        if len(deps.outbox):
            await deps.outbox.flush(registry)
        turn = TurnInputs(message=last_human_text(state["messages"])[:MAX_TEXT_CHARS])
        elements = [e for e in registry if not isinstance(e, InterventionMemory)]
        *sections, due = await asyncio.gather(*(e.load(user, turn) for e in elements),
                                              deps.store.pop_due(user, time.time()))
    except MemoryUnavailable as exc:
        log.warning("load_context: memory unavailable (%s); continuing without it", exc)
        return {**update, "context": "", "due": [], "style": state.get("style", style_flags(None)),
                "used_memory_ids": [], "degraded": True, "notice": MEMORY_OFFLINE_NOTICE,
                "timings": {"load_context": ms_since(start)}}
    profile = next((s.data for s in sections if s.element == "profile"), None)
    return {
        **update,
        "context": render_context(sections, due),
        "style": style_flags(profile if isinstance(profile, Profile) else None),
        "country": country_of(profile.locale, profile.timezone) if isinstance(profile, Profile) else None,
        # On by default (Profile's default): someone with no profile yet has not said no.
        "pool_consent": profile.consent_pooled_learning if isinstance(profile, Profile) else True,
        "due": due,
        "used_memory_ids": [i for s in sections for i in s.used_ids],
        "timings": {"load_context": ms_since(start)},
    }
