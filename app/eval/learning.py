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

**Drift.** A situation may carry ``drift: {"from_session": N, "success": {...}}``: from
session N (1-based) on, that map replaces ``success``, so what helped stops helping and the
oracle (best tool every time) is computed per session.

**Population.** A file may describe a population instead of (or besides) personas: people
drawn from weighted archetypes who all share one memory namespace, so the pooled
population counters are shared, and who join one after another. Each probability of a
person is drawn uniformly in ``[p - spread, p + spread]`` (clipped to [0, 1]) around their
archetype's ``p``, with a random source keyed by the file's seed and the person's index, so
the same person is drawn again on a rerun. The late joiners (index >= ``late_joiners_after``)
are then run once more under fresh user ids with pooling switched off
(``PolicySettings.use_population = False``): their first sessions with vs without the pool.

**Parallelism.** Each (persona, arm) and the whole population are independent jobs; with
``workers > 1`` they run in spawned worker processes, each opening its own memory stack
against the same Redis and loading the embedder itself. Every random draw is keyed by the
seed and the person, so the merged result does not depend on the scheduling.

The figures are computed in :mod:`app.eval.learning_report`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.companion import Companion
from app.eval.files import load_json_model
from app.settings import Settings
from graphs.models.template import TemplateChatModel
from graphs.policy import turn_rng
from graphs.session import TurnResult
from graphs.turn import NO_DECISION
from memories.config import MemorySettings
from memories.profile import ProfileMemory
from memories.records import ShortText, Text
from memories.stack import open_memory
from tools import TOOL_NAMES

UNLISTED_TOOL = 0.1
NO_TOOL = 0.05
LAST_SESSIONS = 5
FIRST_SESSIONS = 3

Progress = Callable[[str], None]


def _check_success(value: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(value) - set(TOOL_NAMES))
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown}; tools are {sorted(TOOL_NAMES)}")
    if any(not 0 <= p <= 1 for p in value.values()):
        raise ValueError("probabilities must be between 0 and 1")
    return value


class Drift(BaseModel):
    """From session ``from_session`` (1-based) on, ``success`` replaces the situation's map."""

    from_session: int = Field(ge=1, description="First session (1-based) with the new probabilities.")
    success: dict[str, float] = Field(description="Tool name → probability, from that session on.")

    @field_validator("success")
    @classmethod
    def _known_tools(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_success(value)


class Situation(BaseModel):
    """A kind of moment the person has, and how likely each tool is to help them in it."""

    kind: ShortText
    utterances: list[Text] = Field(min_length=1)
    success: dict[str, float] = Field(description="Tool name → probability the person is helped.")
    drift: Drift | None = Field(None, description="What helps changes from a session on.")

    @field_validator("success")
    @classmethod
    def _known_tools(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_success(value)

    def success_at(self, session: int) -> dict[str, float]:
        """The probabilities in force in ``session`` (1-based)."""
        if self.drift is not None and session >= self.drift.from_session:
            return self.drift.success
        return self.success

    def best_at(self, session: int) -> tuple[str | None, float]:
        """The best tool in ``session`` and its probability (None: no listed tool beats an unlisted one)."""
        listed = self.success_at(session)
        tool = max(listed, key=lambda t: listed[t], default=None)
        if tool is None or listed[tool] < UNLISTED_TOOL:
            return None, UNLISTED_TOOL
        return tool, listed[tool]


class Persona(BaseModel):
    """One simulated person."""

    user_id: ShortText
    about: str = Field("", description="Who they are (documentation only).")
    profile: dict[str, Any] = Field(default_factory=dict)
    situations: list[Situation] = Field(min_length=1)
    success_replies: list[Text] = Field(min_length=1)
    failure_replies: list[Text] = Field(min_length=1)


class Archetype(BaseModel):
    """A kind of person in the population; people of it vary around its probabilities."""

    weight: float = Field(gt=0, description="Relative share of the population.")
    about: str = ""
    profile: dict[str, Any] = Field(default_factory=dict)
    situations: list[Situation] = Field(min_length=1)


class Population(BaseModel):
    """Many people sharing one memory namespace (and so the pooled counters), joining in order."""

    people: int = Field(ge=1, le=10_000)
    sessions: int = Field(ge=1, le=500)
    spread: float = Field(0.1, ge=0, le=0.5, description="Each probability is drawn in [p - spread, p + spread].")
    late_joiners_after: int = Field(ge=0, description="People with this index or higher are the late joiners.")
    success_replies: list[Text] = Field(min_length=1)
    failure_replies: list[Text] = Field(min_length=1)
    archetypes: list[Archetype] = Field(min_length=1)

    @model_validator(mode="after")
    def _late_joiners_exist(self) -> Population:
        if self.late_joiners_after >= self.people:
            raise ValueError(f"late_joiners_after ({self.late_joiners_after}) must be below people ({self.people})")
        return self


def _check_drifts(situations: list[Situation], sessions: int) -> None:
    for situation in situations:
        if situation.drift is not None and situation.drift.from_session > sessions:
            raise ValueError(f"drift.from_session of {situation.kind!r} is {situation.drift.from_session}, "
                             f"after the last session ({sessions})")


class PersonaFile(BaseModel):
    """The evaluation's input file: personas, a population, or both."""

    seed: int
    sessions: int = Field(ge=1, le=500)
    turns_per_session: int = Field(ge=1, le=200)
    personas: list[Persona] = Field(default_factory=list)
    population: Population | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PersonaFile:
        if not self.personas and self.population is None:
            raise ValueError("personas: a file needs personas or a population")
        ids = [p.user_id for p in self.personas]
        if len(set(ids)) != len(ids):
            raise ValueError("persona user_ids must be unique")
        for persona in self.personas:
            _check_drifts(persona.situations, self.sessions)
        if self.population is not None:
            for archetype in self.population.archetypes:
                _check_drifts(archetype.situations, self.population.sessions)
        return self


def load_personas(path: Path) -> PersonaFile:
    """Read and validate a personas file; errors say what is wrong and where."""
    return load_json_model(path, PersonaFile, field="personas")


def success_probability(situation: Situation, tool: str | None, session: int = 1) -> float:
    """How likely the simulated person is helped by ``tool`` in ``situation`` in ``session`` (1-based)."""
    if tool is None:
        return NO_TOOL
    return situation.success_at(session).get(tool, UNLISTED_TOOL)


def persona_oracle(situations: list[Situation], session: int) -> float:
    """Best expected success in ``session``: the best tool in every (equally likely) situation."""
    return sum(s.best_at(session)[1] for s in situations) / len(situations)


def oracle_by_session(spec: PersonaFile) -> list[float]:
    """The oracle per session, over the personas (drift changes it from a session on)."""
    return [sum(persona_oracle(p.situations, s) for p in spec.personas) / len(spec.personas)
            for s in range(1, spec.sessions + 1)] if spec.personas else []


def oracle_rate(spec: PersonaFile) -> float:
    """The best achievable expected success rate over all sessions."""
    per_session = oracle_by_session(spec)
    return sum(per_session) / len(per_session) if per_session else 0.0


# --- the population ------------------------------------------------------------------------------

def _jitter(success: dict[str, float], rng: random.Random, spread: float) -> dict[str, float]:
    return {tool: round(min(1.0, max(0.0, rng.uniform(p - spread, p + spread))), 4) for tool, p in success.items()}


def population_person(population: Population, seed: int, index: int) -> Persona:
    """Person ``index`` of the population: an archetype drawn by weight, each probability drawn
    uniformly within ± ``spread`` of the archetype's (clipped to [0, 1]); keyed by seed and index.
    They agree to pooled learning unless the archetype's profile says otherwise."""
    rng = random.Random(f"{seed}:population:{index}")
    archetype = rng.choices(population.archetypes, weights=[a.weight for a in population.archetypes])[0]
    situations = []
    for situation in archetype.situations:
        drift = situation.drift
        situations.append(situation.model_copy(update={
            "success": _jitter(situation.success, rng, population.spread),
            "drift": None if drift is None else drift.model_copy(
                update={"success": _jitter(drift.success, rng, population.spread)})}))
    return Persona(user_id=f"pop-{index:03d}", about=archetype.about,
                   profile={"consent_pooled_learning": True, **archetype.profile}, situations=situations,
                   success_replies=population.success_replies, failure_replies=population.failure_replies)


def population_people(population: Population, seed: int) -> list[Persona]:
    """Everyone in the population, in joining order."""
    return [population_person(population, seed, i) for i in range(population.people)]


# --- running ------------------------------------------------------------------------------------

#: How the simulated people answer the safety check (none of them is in danger).
ALL_CLEAR_ANSWERS = ("yeah im fine", "no no im safe, not like that", "im ok, just stressed", "all good, im safe",
                     "haha no im fine, just forgetful", "I'm okay. It's just a lot today.")


class Turn(BaseModel):
    """One simulated turn: the situation, what the agent chose and how it went."""

    session: int = Field(description="1-based.")
    situation: int = Field(description="Index into the person's situations.")
    tool: str | None
    p: float = Field(description="Probability the chosen tool helps (the expected success of the turn).")
    helped: bool
    read: str | None = Field(description="The outcome the graph read from the answer.")
    asked: bool = Field(False, description="The answer was unclear to the companion, so it asked whether it helped.")
    answer_read: str | None = Field(None, description="The outcome read from the answer to that question.")


class PersonRun(BaseModel):
    """All turns of one person in one arm."""

    user_id: str
    turns: list[Turn]


def outcome_read(result: TurnResult | None) -> str | None:
    """The outcome the companion read from a reply (None: it read none, or there was no reply)."""
    return result.evidence.outcome.value if result and result.evidence and result.evidence.outcome else None


async def run_person(companion: Companion, persona: Persona, key: tuple[Any, ...], *,
                     seed: int, sessions: int, turns: int, memory_on: bool, label: str,
                     progress: Progress | None = None,
                     record: Callable[[dict[str, Any]], None] | None = None) -> PersonRun:
    """One person through every session; ``key`` names them in every random draw. ``record``
    sees every turn's result and each session's end (``sam2voice eval run --personas``)."""
    def sent(session_no: int, said: str, result: TurnResult, **extra: Any) -> TurnResult:
        if record is not None:
            record({**result.model_dump(mode="json", exclude={"thread_id", "timings"}), "kind": "turn",
                    "session": session_no + 1, "say": said, "expect": {}, **extra})
        return result

    if memory_on and (profiles := companion.stack.registry.get(ProfileMemory)) is not None and persona.profile:
        await profiles.update(persona.user_id, persona.profile)
    done: list[Turn] = []
    for session_no in range(sessions):
        session = companion.session(persona.user_id, seed=":".join(map(str, (seed, *key, session_no))))
        await session.open()
        helped_here = 0
        for turn in range(turns):
            pick = turn_rng(seed, *key, session_no, turn, "situation")
            which = pick.randrange(len(persona.situations))
            situation = persona.situations[which]
            said = pick.choice(situation.utterances)
            result = sent(session_no, said, await session.send(said))
            if result.safety and result.understanding and result.understanding.source == "classifier":
                # Asked "are you safe right now?" about an everyday struggle, a person says so.
                said = pick.choice(ALL_CLEAR_ANSWERS)
                result = sent(session_no, said, await session.send(said))
            decision = result.decision or NO_DECISION
            # What the person received: the policy's choice, or the tool they asked for ("remind me
            # at 5" gets a reminder, recorded and learnt from like any intervention). A celebration
            # after a misread "it helped" is not help for the struggle, so it counts as nothing.
            tool = decision.tool if decision.suggested or decision.intervention else None
            p = success_probability(situation, tool, session_no + 1)
            helped = turn_rng(seed, *key, session_no, turn, "draw").random() < p
            helped_here += helped
            replies = persona.success_replies if helped else persona.failure_replies
            said = pick.choice(replies)
            reply = sent(session_no, said, await session.send(said), simulated={"tool": tool, "p": p, "helped": helped})
            asked = reply.decision is not None and reply.decision.say == "ask_outcome"
            # Asked "did that help?", a person answers (in their own words again); nobody ignores it.
            answer = None
            if asked:
                said = pick.choice(replies)
                answer = sent(session_no, said, await session.send(said))
            done.append(Turn(session=session_no + 1, situation=which, tool=tool, p=p, helped=helped,
                             read=outcome_read(reply), asked=asked, answer_read=outcome_read(answer)))
        ended = await session.end()
        if record is not None:
            record({"kind": "end", "session": session_no + 1, "reflection": ended.reflection})
        if progress:
            progress(f"{label} · {persona.user_id} · session {session_no + 1}/{sessions}: "
                     f"{helped_here / turns:.0%} helped")
    return PersonRun(user_id=persona.user_id, turns=done)


@asynccontextmanager
async def scratch_companion(redis_url: str, settings: Settings, base_embeddings: Any, *, memory_on: bool
                            ) -> AsyncIterator[Companion]:
    """The template-model companion on a memory layer in a namespace of its own (memory off:
    no elements at all), with its writes queued in memory only; its memory is closed on exit."""
    namespace = f"eval{uuid.uuid4().hex[:10]}"
    memory = MemorySettings(namespace=namespace) if memory_on else MemorySettings(namespace=namespace, enabled=[])
    stack = await open_memory(redis_url, memory, base_embeddings=base_embeddings)
    try:
        yield await Companion.assemble(stack, settings, chat_model=TemplateChatModel())
    finally:
        await stack.aclose()


def no_pool(settings: Settings) -> Settings:
    """The same settings with the population pool switched off."""
    policy = settings.companion.policy.model_copy(update={"use_population": False})
    companion = settings.companion.model_copy(update={"policy": policy})
    return settings.model_copy(update={"companion": companion})


class Job(BaseModel):
    """One independent piece of the evaluation."""

    kind: Literal["persona", "population"]
    index: int = 0
    memory_on: bool = True


JobResult = dict[str, PersonRun]  # "on:<index>", "off:<index>", "pool:<index>", "nopool:<index>"


async def run_job(job: Job, spec: PersonaFile, *, redis_url: str, settings: Settings, base_embeddings: Any,
                  progress: Progress | None = None) -> JobResult:
    """Run one job. A persona gets a namespace of its own; the population shares one: everyone
    joins in order with the pool, then the late joiners again, fresh ids, with the pool off."""
    if job.kind == "persona":
        persona = spec.personas[job.index]
        async with scratch_companion(redis_url, settings, base_embeddings, memory_on=job.memory_on) as companion:
            run = await run_person(companion, persona, (job.index,), seed=spec.seed,
                                   sessions=spec.sessions, turns=spec.turns_per_session, memory_on=job.memory_on,
                                   label="memory on " if job.memory_on else "memory off", progress=progress)
        return {f"{'on' if job.memory_on else 'off'}:{job.index}": run}
    population = spec.population
    assert population is not None
    people = population_people(population, spec.seed)
    runs: JobResult = {}
    async with scratch_companion(redis_url, settings, base_embeddings, memory_on=True) as pooled:
        for i, person in enumerate(people):
            runs[f"pool:{i}"] = await run_person(
                pooled, person, ("pop", i), seed=spec.seed,
                sessions=population.sessions, turns=spec.turns_per_session, memory_on=True, label="population",
                progress=progress)
        # The same namespace (the pool is there) and the same draws, but a graph that does not use it.
        unpooled = await Companion.assemble(pooled.stack, no_pool(settings), chat_model=TemplateChatModel())
        for i in range(population.late_joiners_after, population.people):
            person = people[i].model_copy(update={"user_id": f"{people[i].user_id}-nopool"})
            runs[f"nopool:{i}"] = await run_person(
                unpooled, person, ("pop", i), seed=spec.seed, sessions=population.sessions,
                turns=spec.turns_per_session, memory_on=True, label="no pool", progress=progress)
    return runs


# --- worker processes -----------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(progress_queue: Any) -> None:
    _worker["queue"] = progress_queue


def _run_in_worker(job: Job, spec: PersonaFile, redis_url: str, settings: Settings) -> JobResult:
    if "embedder" not in _worker:
        from memories.embeddings import LocalMiniLMEmbeddings

        embedder = LocalMiniLMEmbeddings(threads=1)
        _worker["embedder"] = (embedder, embedder.model_id, embedder.dims)
    return asyncio.run(run_job(job, spec, redis_url=redis_url, settings=settings,
                               base_embeddings=_worker["embedder"], progress=_worker["queue"].put))


def jobs_for(spec: PersonaFile, *, population: bool = True) -> list[Job]:
    """Every job, the longest first (the population runs its people one after another)."""
    jobs = [Job(kind="population")] if population and spec.population is not None else []
    return jobs + [Job(kind="persona", index=i, memory_on=on) for i in range(len(spec.personas))
                   for on in (True, False)]


async def run_jobs(jobs: list[Job], spec: PersonaFile, *, redis_url: str, settings: Settings, base_embeddings: Any,
                   progress: Progress | None, workers: int) -> JobResult:
    """Run the jobs here (``workers`` 1) or in that many spawned processes; merged in job order."""
    results: list[JobResult] = []
    workers = min(workers, len(jobs))
    if workers <= 1:
        if base_embeddings is None:
            from memories.embeddings import LocalMiniLMEmbeddings

            embedder = LocalMiniLMEmbeddings()
            base_embeddings = (embedder, embedder.model_id, embedder.dims)
        for job in jobs:
            results.append(await run_job(job, spec, redis_url=redis_url, settings=settings,
                                         base_embeddings=base_embeddings, progress=progress))
    else:
        context = multiprocessing.get_context("spawn")
        lines = context.Queue()

        def drain(wait: float = 0.0) -> None:
            while True:
                try:
                    line = lines.get(timeout=wait) if wait else lines.get_nowait()
                except queue_module.Empty:
                    return
                if progress:
                    progress(line)

        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(lines,)) as pool:
            futures: list[Future[JobResult]] = [pool.submit(_run_in_worker, job, spec, redis_url, settings)
                                                for job in jobs]
            waiting = {asyncio.wrap_future(f) for f in futures}
            while waiting:
                _, waiting = await asyncio.wait(waiting, timeout=0.2)
                drain()
            results = [f.result() for f in futures]
        drain(wait=0.1)
    merged: JobResult = {}
    for result in results:
        merged.update(result)
    return merged


async def run_learning_eval(spec: PersonaFile, *, redis_url: str, settings: Settings, base_embeddings: Any = None,
                            progress: Progress | None = None, workers: int = 1,
                            population: bool = True) -> dict[str, Any]:
    """Both arms, the oracle and (if the file has one and ``population``) the population; the
    report (see :func:`app.eval.learning_report.build_report`) says whether the targets are met."""
    from app.eval.learning_report import build_report

    start = time.perf_counter()
    jobs = jobs_for(spec, population=population)
    workers = max(1, min(workers, len(jobs)))
    runs = await run_jobs(jobs, spec, redis_url=redis_url, settings=settings, base_embeddings=base_embeddings,
                          progress=progress, workers=workers)
    report = build_report(spec, runs).model_dump(mode="json")
    report["workers"] = workers
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def plot_learning(result: dict[str, Any], path: Path) -> None:
    """Draw the learning curves (see :func:`app.eval.learning_report.plot_learning`)."""
    from app.eval.learning_report import plot_learning as plot

    plot(result, path)
