"""The learning evaluation: simulated people talk to the real graph and memory over many
sessions; does the companion find what works for each of them?

Each turn the simulated person says an utterance of a random situation of theirs. After
the reply they answer with a success reply with the probability their persona lists for
the tool the agent used (unlisted tools 0.1, no tool 0.05), else a failure reply. That
answer is sent to the graph as their next message, so the outcome is detected by the real
record-outcome path (evidence reader), never handed to the agent. The wording comes from
the deterministic template model; every decision is the real graph's.

Both arms see the same situations and the same random draws (common random numbers):
``memory_on`` with every memory element, ``memory_off`` with none.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from app.companion import build_deps, checkpointer_for
from app.settings import Settings
from graphs.graph import build_companion_graph
from graphs.models.template import TemplateChatModel
from graphs.policy import turn_rng
from graphs.session import CompanionSession
from memories.config import MemorySettings
from memories.errors import InvalidInput
from memories.profile import ProfileMemory
from memories.records import ShortText, Text
from memories.stack import open_memory
from tools import TOOL_NAMES

UNLISTED_TOOL = 0.1
NO_TOOL = 0.05
LAST_SESSIONS = 5

Progress = Callable[[str], None]


class Situation(BaseModel):
    """A kind of moment the person has, and how likely each tool is to help them in it."""

    kind: ShortText
    utterances: list[Text] = Field(min_length=1)
    success: dict[str, float] = Field(description="Tool name → probability the person is helped.")

    @field_validator("success")
    @classmethod
    def _known_tools(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(TOOL_NAMES))
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; tools are {sorted(TOOL_NAMES)}")
        if any(not 0 <= p <= 1 for p in value.values()):
            raise ValueError("probabilities must be between 0 and 1")
        return value


class Persona(BaseModel):
    """One simulated person."""

    user_id: ShortText
    profile: dict[str, Any] = Field(default_factory=dict)
    situations: list[Situation] = Field(min_length=1)
    success_replies: list[Text] = Field(min_length=1)
    failure_replies: list[Text] = Field(min_length=1)


class PersonaFile(BaseModel):
    """The evaluation's input file."""

    seed: int
    sessions: int = Field(ge=1, le=500)
    turns_per_session: int = Field(ge=1, le=200)
    personas: list[Persona] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_users(self) -> PersonaFile:
        ids = [p.user_id for p in self.personas]
        if len(set(ids)) != len(ids):
            raise ValueError("persona user_ids must be unique")
        return self


def load_personas(path: Path) -> PersonaFile:
    """Read and validate a personas file; errors say what is wrong and where."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}", field="personas") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}", field="personas") from None
    try:
        return PersonaFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))",
                           field="personas") from None


def success_probability(situation: Situation, tool: str | None) -> float:
    """How likely the simulated person is helped by ``tool`` in ``situation``."""
    if tool is None:
        return NO_TOOL
    return situation.success.get(tool, UNLISTED_TOOL)


def oracle_rate(spec: PersonaFile) -> float:
    """The best achievable expected success rate: the best tool in every situation."""
    per_persona = [sum(max([*s.success.values(), UNLISTED_TOOL]) for s in p.situations) / len(p.situations)
                   for p in spec.personas]
    return sum(per_persona) / len(per_persona)


class ArmResult(BaseModel):
    """One arm's results."""

    success_by_session: list[float] = Field(description="Success rate per session, over all personas.")
    by_persona: dict[str, list[float]] = Field(description="Success rate per session, per persona.")
    outcome_reading_accuracy: float = Field(description="Share of simulated answers read with the right sign.")


async def run_arm(spec: PersonaFile, *, memory_on: bool, redis_url: str, settings: Settings,
                  base_embeddings: Any, progress: Progress | None = None) -> ArmResult:
    """Run every persona through every session with memory on or off."""
    by_persona: dict[str, list[float]] = {}
    read_right = read_total = 0
    for index, persona in enumerate(spec.personas):
        namespace = f"eval{uuid.uuid4().hex[:10]}"
        memory = MemorySettings(namespace=namespace) if memory_on else MemorySettings(namespace=namespace, enabled=[])
        stack = await open_memory(redis_url, memory, base_embeddings=base_embeddings)
        try:
            if memory_on and (profiles := stack.registry.get(ProfileMemory)) is not None and persona.profile:
                await profiles.update(persona.user_id, persona.profile)
            deps = await build_deps(stack, TemplateChatModel(), settings)
            graph = build_companion_graph(deps, checkpointer=await checkpointer_for(stack))
            rates: list[float] = []
            for session_no in range(spec.sessions):
                session = CompanionSession(graph, deps, persona.user_id, seed=f"{spec.seed}:{index}:{session_no}")
                await session.open()
                successes = 0
                for turn in range(spec.turns_per_session):
                    pick = turn_rng(spec.seed, index, session_no, turn, "situation")
                    situation = pick.choice(persona.situations)
                    result = await session.send(pick.choice(situation.utterances))
                    decision = result.decision or {}
                    tool = decision.get("tool") if decision.get("source") == "policy" else None
                    helped = turn_rng(spec.seed, index, session_no, turn, "draw").random() < success_probability(
                        situation, tool)
                    successes += helped
                    answer = pick.choice(persona.success_replies if helped else persona.failure_replies)
                    reply = await session.send(answer)
                    if tool is not None and memory_on:
                        read = (reply.evidence or {}).get("outcome")
                        positive = read in ("task_completed", "task_progress", "re_engaged")
                        negative = read in ("distracted", "abandoned")
                        read_right += (helped and positive) or (not helped and negative)
                        read_total += 1
                await session.end()
                rates.append(successes / spec.turns_per_session)
                if progress:
                    arm = "memory on " if memory_on else "memory off"
                    progress(f"{arm} · {persona.user_id} · session {session_no + 1}/{spec.sessions}: "
                             f"{rates[-1]:.0%} helped")
            by_persona[persona.user_id] = rates
        finally:
            await stack.aclose()
    sessions = [sum(r[s] for r in by_persona.values()) / len(by_persona) for s in range(spec.sessions)]
    return ArmResult(success_by_session=sessions, by_persona=by_persona,
                     outcome_reading_accuracy=read_right / read_total if read_total else 0.0)


def _mean_last(values: list[float], n: int) -> float:
    tail = values[-n:]
    return sum(tail) / len(tail)


async def run_learning_eval(spec: PersonaFile, *, redis_url: str, settings: Settings, base_embeddings: Any,
                            progress: Progress | None = None) -> dict[str, Any]:
    """Both arms plus the oracle; the summary says whether the targets are met."""
    start = time.perf_counter()
    on = await run_arm(spec, memory_on=True, redis_url=redis_url, settings=settings,
                       base_embeddings=base_embeddings, progress=progress)
    off = await run_arm(spec, memory_on=False, redis_url=redis_url, settings=settings,
                        base_embeddings=base_embeddings, progress=progress)
    oracle = oracle_rate(spec)
    last = min(LAST_SESSIONS, spec.sessions)
    on_last, off_last = _mean_last(on.success_by_session, last), _mean_last(off.success_by_session, last)
    return {
        "memory_on": on.model_dump(),
        "memory_off": {k: v for k, v in off.model_dump().items() if k != "outcome_reading_accuracy"},
        "oracle_rate": round(oracle, 4),
        "last_sessions": last,
        "memory_on_last": round(on_last, 4),
        "memory_off_last": round(off_last, 4),
        "on_vs_oracle": round(on_last / oracle, 4) if oracle else None,
        "on_minus_off": round(on_last - off_last, 4),
        "target_met": on_last >= 0.8 * oracle and on_last - off_last >= 0.15,
        "seconds": round(time.perf_counter() - start, 1),
    }


def plot_learning(result: dict[str, Any], path: Path) -> None:
    """Success rate per session, memory on vs off, with the oracle and the 0.8 × oracle line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # matplotlib is a dev extra
        raise InvalidInput("plotting needs matplotlib (pip install -e '.[dev]')", field="plot") from exc
    on, off = result["memory_on"]["success_by_session"], result["memory_off"]["success_by_session"]
    sessions = list(range(1, len(on) + 1))
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.plot(sessions, on, marker="o", label="memory on")
    ax.plot(sessions, off, marker="s", label="memory off")
    ax.axhline(result["oracle_rate"], color="grey", linestyle="--", label="oracle (best tool every time)")
    ax.axhline(0.8 * result["oracle_rate"], color="grey", linestyle=":", label="0.8 × oracle")
    ax.axvspan(len(on) - result["last_sessions"] + 0.5, len(on) + 0.5, color="grey", alpha=0.1)
    ax.set_xlabel("session")
    ax.set_ylabel("share of turns that helped")
    ax.set_ylim(0, 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower center", fontsize=8, ncol=2)
    ax.set_title("Learning what helps each person (simulated personas)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
