"""InterventionMemory: what the companion did, in which situation, and whether it helped."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redisvl.query.filter import Tag

from memories.base import MemoryElement
from memories.config import RankingWeights
from memories.connection import unavailable_as_typed_error
from memories.errors import InvalidInput, RecordNotFound
from memories.outcomes import FAILED, OUTCOME_VALUE, Outcome
from memories.population import PoolCount, Population
from memories.ranking import NO_TOOL, ToolStats, score
from memories.records import MemorySection, Record, ShortText, Tags, Text, Timestamp, TurnInputs, now
from memories.storage import UserScopedIndex, join_tags, split_tags, tag_field
from memories.tracing import traced
from memories.validation import parse, user_tag, validate_user_id

MAX_TOOL_ARGS_CHARS = 4000
STAT_SEP = "\x1f"
RETURN_FIELDS = ["text", "tool_name", "tool_args", "user_context", "task", "situation_tags",
                 "outcome", "created_at", "settled_at", "quality", "vector_distance"]

# Settles an outcome atomically: checks the record belongs to the user, moves the tool's
# counters from the old outcome's value to the new one, refreshes TTLs, and moves the
# person's own population contribution for the record's cluster (``memories.population``):
# a record counts there once, under the contribution epoch it was pooled in.
# Hand-written because no library offers compare-and-set across a record and counters.
# KEYS: the record ({prefix}:{<user_tag>}:{id}), the user's stats and their pool
# contributions: one hash tag, one slot. Returns {old} or, when the contribution changed,
# {old, cluster, tool, tries, successes, salt}: the absolute counts to push to the pool.
_SETTLE = """
local uid = redis.call('HGET', KEYS[1], 'user_id')
if (not uid) or uid ~= ARGV[1] then return false end
local values = cjson.decode(ARGV[5])
local tool = redis.call('HGET', KEYS[1], 'tool_name')
local old = redis.call('HGET', KEYS[1], 'outcome')
if values[old] then
  redis.call('HINCRBY', KEYS[2], tool .. ARGV[6] .. 'n', -1)
  redis.call('HINCRBYFLOAT', KEYS[2], tool .. ARGV[6] .. 'v', -values[old])
end
if values[ARGV[2]] then
  redis.call('HINCRBY', KEYS[2], tool .. ARGV[6] .. 'n', 1)
  redis.call('HINCRBYFLOAT', KEYS[2], tool .. ARGV[6] .. 'v', values[ARGV[2]])
end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2], 'settled_at', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local cluster = redis.call('HGET', KEYS[1], 'cluster')
if (not cluster) or cluster == '' or tool == ARGV[9] then return {old} end
local epoch = redis.call('HGET', KEYS[3], 'epoch') or '0'
local field = 'c|' .. cluster .. '|' .. tool
local changed = false
if redis.call('HGET', KEYS[1], 'pooled') == epoch and values[old] then
  redis.call('HINCRBY', KEYS[3], field .. '|n', -1)
  if values[old] >= 0.5 then redis.call('HINCRBY', KEYS[3], field .. '|s', -1) end
  changed = true
end
local pooled = ''
if ARGV[7] == '1' and values[ARGV[2]] then
  redis.call('HINCRBY', KEYS[3], field .. '|n', 1)
  if values[ARGV[2]] >= 0.5 then redis.call('HINCRBY', KEYS[3], field .. '|s', 1) end
  pooled = epoch
  changed = true
end
redis.call('HSET', KEYS[1], 'pooled', pooled)
if not changed then return {old} end
redis.call('HSETNX', KEYS[3], 'salt', ARGV[8])
return {old, cluster, tool, redis.call('HGET', KEYS[3], field .. '|n') or '0',
        redis.call('HGET', KEYS[3], field .. '|s') or '0', redis.call('HGET', KEYS[3], 'salt')}
"""


class NewIntervention(Record):
    """An intervention as the agent records it."""

    text: Text = Field(description="What the companion said or did.")
    tool_name: ShortText | None = Field(None, description="The tool used, if any.")
    tool_args: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments (JSON).")
    user_context: Text = Field(description="What the person said: the situation being searched by.")
    task: Text | None = Field(None, description="The task being worked on.")
    situation_tags: Tags = Field(default_factory=list, description="E.g. 'overwhelm', 'task-start'.")
    outcome: Outcome = Field(Outcome.PENDING, description="Pending until settled.")
    quality: float | None = Field(None, ge=0, le=1, description="How well the reply was said, 0-1 "
                                  "(graphs.style.reply_quality); None when not scored.")
    created_at: Timestamp | None = Field(None, description="Defaults to now.")

    @field_validator("tool_args")
    @classmethod
    def _args_are_small_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tool_args must be JSON without NaN: {exc}") from None
        if len(encoded) > MAX_TOOL_ARGS_CHARS:
            raise ValueError(f"tool_args is {len(encoded)} characters as JSON; the limit is {MAX_TOOL_ARGS_CHARS}")
        return value

    @property
    def situation(self) -> str:
        """The text that is embedded: what the person said, plus the task."""
        return TurnInputs(message=self.user_context, task=self.task).situation


class Intervention(NewIntervention):
    """A stored intervention."""

    id: str = Field(description="Record id.")
    created_at: Timestamp = Field(description="When it was recorded.")
    settled_at: Timestamp | None = Field(None, description="When its outcome was settled.")


class FewShotExample(BaseModel):
    """A past intervention chosen as an example, with why it ranked where it did."""

    intervention: Intervention
    similarity: float = Field(description="Cosine similarity to the situation (1 = same meaning).")
    success_rate: float = Field(description="The user's smoothed success rate with this tool.")
    recency: float = Field(description="1 for now, 0.5 after one half-life.")
    score: float = Field(description="The combined ranking score.")
    contrast: bool = Field(False, description="True for a failed example shown as what not to repeat.")


class _Candidate(NamedTuple):
    """A scored search row, before it is worth building models for."""

    row: dict[str, Any]
    similarity: float
    success_rate: float
    recency: float
    score: float
    contrast: bool


class Neighbor(NamedTuple):
    """A similar past intervention as the agent's choice reads it: which tool, how it went."""

    tool_name: str
    outcome: Outcome
    similarity: float
    age_s: float


class Neighborhood(BaseModel):
    """What one search around a situation found: prompt examples, all neighbours, per-tool results."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    examples: list[FewShotExample] = Field(description="Ranked few-shot examples (plus an optional contrast).")
    neighbors: list[Neighbor] = Field(description="Every similar past intervention, failures included.")
    rates: dict[str, ToolStats] = Field(description="The user's results per tool, over all situations.")
    cluster: str | None = Field(None, description="The kind of moment the situation is (memories.population).")
    population: dict[str, PoolCount] = Field(default_factory=dict,
                                             description="What helped other people in that kind of moment.")
    vectors: np.ndarray | None = Field(None, description="With ``with_vectors``: each neighbour's stored situation "
                                                         "vector, one row per neighbour, in order.")


class InterventionMemory(MemoryElement[NewIntervention]):
    """Past interventions of each user, searchable by situation and ranked by what worked."""

    name = "interventions"
    memory_variables = ["few_shot_examples"]

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.population = Population(backend)

    async def setup(self) -> None:
        """The index, and the kinds of moment embedded now rather than on someone's first turn."""
        await super().setup()
        await self.population.clusters.centroids()

    def _build_index(self) -> UserScopedIndex:
        return self._vector_index([tag_field("tool_name"), tag_field("outcome"), tag_field("situation_tags"),
                                   {"name": "created_at", "type": "numeric", "attrs": {"sortable": True}}])

    @property
    def ttl_s(self) -> int:
        return int(self.settings.intervention_ttl_days * 86400)

    def _stats_key(self, user_id: str) -> str:
        return self.backend.person_key("intervention_stats", self.backend.vector_tag, user_id=user_id)

    async def save(self, user_id: str, record: NewIntervention | dict[str, Any]) -> str:
        """Store one intervention; returns its id."""
        return (await self.record_many(user_id, [record]))[0].id

    @traced("interventions.record_many")
    @unavailable_as_typed_error
    async def record_many(
        self, user_id: str, records: list[NewIntervention | dict[str, Any]], *, ids: list[str] | None = None
    ) -> list[Intervention]:
        """Store a batch (embedded together); all are validated before anything is written.
        ``ids`` lets a caller name records before they are stored (a write waiting in an
        outbox can then be settled before it lands); re-storing an id overwrites it."""
        validate_user_id(user_id)
        if len(records) > self.settings.max_batch:
            raise InvalidInput(f"{len(records)} records; the batch limit is {self.settings.max_batch}", field="records")
        if ids is not None and (len(ids) != len(records) or not all(i.isalnum() and len(i) <= 64 for i in ids)):
            raise InvalidInput("one alphanumeric id (<= 64 chars) per record", field="ids")
        items = [parse(NewIntervention, r) for r in records]
        vectors = await self.backend.embeddings.aembed_documents([i.situation for i in items], remember=False)
        stamp = now()
        names = ids or [uuid.uuid4().hex for _ in items]
        stored = [Intervention(**i.model_dump(exclude={"created_at"}), id=name,
                               created_at=i.created_at if i.created_at is not None else stamp)
                  for i, name in zip(items, names, strict=True)]
        clusters = await self.population.clusters.nearest_many(vectors)
        docs = [self._to_hash(user_id, s, v, c) for s, v, c in zip(stored, vectors, clusters, strict=True)]
        await self.index.index.load(docs, keys=[self.index.key(user_id, s.id) for s in stored], ttl=self.ttl_s)
        settled = [s for s in stored if OUTCOME_VALUE[s.outcome] is not None]
        if settled:  # recorded with a known outcome (imports, synthetic data): count it now
            # Summed per tool first: two commands per tool, not two per record (a command
            # in a pipeline costs ~12-25 µs).
            tries: dict[str, int] = {}
            values: dict[str, float] = {}
            for s in settled:
                tool = s.tool_name or NO_TOOL
                tries[tool] = tries.get(tool, 0) + 1
                values[tool] = values.get(tool, 0.0) + (OUTCOME_VALUE[s.outcome] or 0.0)
            async with self.backend.client.pipeline(transaction=True) as pipe:
                for tool, n in tries.items():
                    pipe.hincrby(self._stats_key(user_id), f"{tool}{STAT_SEP}n", n)
                    pipe.hincrbyfloat(self._stats_key(user_id), f"{tool}{STAT_SEP}v", values[tool])
                pipe.expire(self._stats_key(user_id), self.ttl_s)
                await pipe.execute()
        return stored

    def _to_hash(self, user_id: str, item: Intervention, vector: list[float], cluster: str | None
                 ) -> dict[str, Any]:
        return {
            "user_id": user_tag(user_id), "text": item.text, "tool_name": item.tool_name or NO_TOOL,
            "tool_args": json.dumps(item.tool_args), "user_context": item.user_context, "task": item.task or "",
            "situation_tags": join_tags(item.situation_tags), "outcome": item.outcome.value,
            "created_at": item.created_at, "settled_at": item.settled_at or "",
            "quality": "" if item.quality is None else item.quality,
            "cluster": cluster or "", "embedding": self.index.vector_bytes(vector),
        }

    @staticmethod
    def _from_hash(raw: dict[str, Any]) -> Intervention:
        tool = raw.get("tool_name") or NO_TOOL
        return Intervention(
            id=UserScopedIndex.record_id(raw["id"]), text=raw["text"], tool_name=None if tool == NO_TOOL else tool,
            tool_args=json.loads(raw.get("tool_args") or "{}"), user_context=raw["user_context"],
            task=raw.get("task") or None, situation_tags=split_tags(raw.get("situation_tags")),
            outcome=Outcome(raw["outcome"]), created_at=float(raw["created_at"]),
            settled_at=float(raw["settled_at"]) if raw.get("settled_at") else None,
            quality=_quality(raw),
        )

    @traced("interventions.settle")
    @unavailable_as_typed_error
    async def settle(self, user_id: str, intervention_id: str, outcome: Outcome | str, *,
                     contribute: bool = False) -> Outcome:
        """Set the outcome of one of the user's interventions; returns the previous outcome.
        ``contribute``: the person agreed that the outcome counts in the population pool."""
        validate_user_id(user_id)
        try:
            new = Outcome(outcome)
        except ValueError:
            raise InvalidInput(f"unknown outcome {outcome!r}; one of {[o.value for o in Outcome]}",
                               field="outcome") from None
        if not intervention_id.isalnum():
            raise RecordNotFound(f"no intervention {intervention_id!r} for this user")
        values = {o.value: v for o, v in OUTCOME_VALUE.items() if v is not None}
        found = await self.backend.client.eval(
            _SETTLE, 3, self.index.key(user_id, intervention_id), self._stats_key(user_id),
            self.population.contributions_key(user_id),
            user_tag(user_id), new.value, now(), self.ttl_s, json.dumps(values), STAT_SEP,
            "1" if contribute else "0", uuid.uuid4().hex, NO_TOOL,
        )
        if found is None:
            raise RecordNotFound(f"no intervention {intervention_id!r} for this user")
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in found]
        if len(text) == 6:  # the person's contribution changed: the pool gets their new counts
            _, cluster, tool, tries, successes, salt = text
            await self.population.push(cluster, tool, salt, int(tries), int(successes))
        return Outcome(text[0])

    @traced("interventions.get")
    @unavailable_as_typed_error
    async def get(self, user_id: str, intervention_id: str) -> Intervention:
        """One of the user's interventions by id."""
        raw = await self.backend.client.hgetall(self.index.key(user_id, intervention_id))
        doc = {k.decode(): v.decode() for k, v in raw.items() if k != b"embedding"}
        if not doc or doc.get("user_id") != user_tag(user_id):
            raise RecordNotFound(f"no intervention {intervention_id!r} for this user")
        return self._from_hash({**doc, "id": intervention_id})

    @traced("interventions.pending")
    async def pending(self, user_id: str, limit: int = 20) -> list[Intervention]:
        """The user's interventions still waiting for an outcome, newest first."""
        rows = await self.index.find(user_id, extra=Tag("outcome") == Outcome.PENDING.value,
                                     return_fields=RETURN_FIELDS, sort_by="created_at", limit=limit)
        return [self._from_hash(r) for r in rows]

    @traced("interventions.recent")
    async def recent(self, user_id: str, limit: int = 20) -> list[Intervention]:
        """The user's interventions with their outcomes, newest first."""
        rows = await self.index.find(user_id, return_fields=RETURN_FIELDS, sort_by="created_at", limit=limit)
        return [self._from_hash(r) for r in rows]

    @traced("interventions.success_rates")
    @unavailable_as_typed_error
    async def success_rates(self, user_id: str) -> dict[str, ToolStats]:
        """The user's observed results per tool."""
        raw = await self.backend.client.hgetall(self._stats_key(user_id))
        stats: dict[str, ToolStats] = {}
        for field, value in raw.items():
            tool, _, kind = field.decode().rpartition(STAT_SEP)
            entry = stats.setdefault(tool, ToolStats(tool_name=tool))
            if kind == "n":
                entry.settled = max(int(value), 0)
            else:
                entry.value_sum = max(float(value), 0.0)
        return stats

    async def similar_successes(
        self, user_id: str, situation: str, *, k: int | None = None, contrast: bool = False,
        weights: RankingWeights | None = None,
    ) -> list[FewShotExample]:
        """Top-k past interventions of this user for a situation, ranked by what worked."""
        text = parse(TurnInputs, {"message": situation}).situation
        if not text:
            raise InvalidInput("must not be empty", field="situation")
        vector = await self.backend.embeddings.aembed_query(text)
        return await self.rank(user_id, vector, k=k, contrast=contrast, weights=weights)

    async def rank(
        self, user_id: str, vector: list[float], *, k: int | None = None, contrast: bool = False,
        weights: RankingWeights | None = None,
    ) -> list[FewShotExample]:
        """Rank the user's nearest interventions to ``vector`` (see ``memories.ranking``);
        ``weights`` overrides the configured ranking weights for this call."""
        return (await self.neighborhood(user_id, vector, k=k, contrast=contrast, weights=weights)).examples

    @traced("interventions.neighborhood")
    async def neighborhood(
        self, user_id: str, vector: list[float], *, k: int | None = None, contrast: bool = False,
        weights: RankingWeights | None = None, pool: int | None = None, population: bool = False,
        with_vectors: bool = False,
    ) -> Neighborhood:
        """One search serving two readers: the ranked few-shot examples for the prompt, and
        every similar past intervention with its outcome (failures included) for the agent's
        choice of what to try, plus the user's per-tool results; with ``population``, also
        what helped other people in this kind of moment (``memories.population``).

        With ``with_vectors`` the neighbours are the whole pool, however faint, each with its
        stored vector, for a caller that judges "the same kind of moment" its own way
        (``graphs.situations``); the few-shot examples keep ``min_similarity``."""
        k = k or self.settings.few_shot_k
        pool = pool or max(self.settings.candidate_pool, k * 3)
        cluster = await self.population.clusters.nearest(vector) if population else None
        rows, rates, pooled = await asyncio.gather(
            self.index.nearest(user_id, vector, k=pool, return_fields=RETURN_FIELDS, with_vectors=with_vectors),
            self.success_rates(user_id),
            self.population.counts(cluster),
        )
        weights, stamp = weights or self.settings.ranking, now()
        min_quality = self.settings.few_shot_min_quality
        # Candidates are scored from the raw rows and only the returned few become models:
        # validating every candidate as pydantic models was most of rank's own CPU time.
        ranked: list[_Candidate] = []
        neighbors: list[Neighbor] = []
        vectors: list[np.ndarray] = []
        untried = ToolStats(tool_name=NO_TOOL).success_rate  # the prior, for tools with no settled outcome
        for row in rows:
            similarity = 1.0 - float(row["vector_distance"])
            outcome = Outcome(row["outcome"])
            tool = row.get("tool_name") or NO_TOOL
            age_s = stamp - float(row["created_at"])
            faint = similarity < weights.min_similarity
            if with_vectors or not faint:
                neighbors.append(Neighbor(tool, outcome, similarity, age_s))
            if with_vectors:
                vectors.append(self.index.vector_of(row))
            # A reply said badly is never shown as an example (its outcome still counts above:
            # whether the tool helped is not a matter of wording); an unscored one is shown.
            if faint or (quality := _quality(row)) is not None and quality < min_quality:
                continue
            stats = rates.get(tool)
            rate = stats.success_rate if stats is not None else untried
            total, rec = score(similarity=similarity, success_rate=rate, outcome=outcome, age_s=age_s, weights=weights)
            ranked.append(_Candidate(row, similarity, rate, rec, total, outcome in FAILED))
        ranked.sort(key=lambda c: c.score, reverse=True)
        chosen = [c for c in ranked if not c.contrast][:k]
        if contrast:
            failed = [c for c in ranked if c.contrast]
            if failed:
                chosen.append(max(failed, key=lambda c: c.similarity))
        examples = [FewShotExample(intervention=self._from_hash(c.row), similarity=c.similarity,
                                   success_rate=c.success_rate, recency=c.recency, score=c.score,
                                   contrast=c.contrast) for c in chosen]
        return Neighborhood(examples=examples, neighbors=neighbors, rates=rates, cluster=cluster, population=pooled,
                            vectors=np.vstack(vectors) if vectors else None)

    async def forget(self, user_id: str) -> int:
        """Delete every intervention of the user, their success counters, and their
        contributions to the population pool (subtracted from it first, exactly)."""
        await self.population.forget(user_id)
        deleted = await super().forget(user_id)
        return deleted + int(await self.backend.client.unlink(self._stats_key(user_id)))

    async def export(self, user_id: str) -> list[dict[str, Any]]:
        """Every intervention of the user plus their per-tool results."""
        rows = await super().export(user_id)
        stats = await self.success_rates(user_id)
        if stats:
            rows.append({"key": self._stats_key(user_id), "success_rates": {
                tool: {**s.model_dump(), "success_rate": s.success_rate} for tool, s in stats.items()}})
        if (contributions := await self.population.export(user_id)) is not None:
            rows.append(contributions)
        return rows

    @traced("interventions.load")
    async def load(self, user_id: str, inputs: TurnInputs | dict[str, Any] | None = None) -> MemorySection:
        """Few-shot examples for the turn's situation (empty when there is no message)."""
        turn = self._inputs(inputs)
        if not turn.situation:
            return MemorySection(element=self.name, prompt="", data=[])
        examples = await self.similar_successes(user_id, turn.situation, k=turn.k, contrast=True)
        return MemorySection(element=self.name, prompt=render_examples(examples), data=examples,
                             used_ids=[e.intervention.id for e in examples])


def _quality(raw: dict[str, Any]) -> float | None:
    """The stored reply quality of a row (absent or empty: not scored, e.g. recorded before scoring)."""
    value = raw.get("quality")
    return float(value) if value not in (None, "") else None


def render_examples(examples: list[FewShotExample]) -> str:
    """Few-shot examples as prompt lines."""
    lines = []
    for e in examples:
        i = e.intervention
        how = f"used {i.tool_name}" if i.tool_name else "replied"
        verdict = "did NOT help" if e.contrast else f"outcome: {i.outcome.value}"
        lines.append(f'- They said "{i.user_context}"; you {how}: "{i.text}" ({verdict}; '
                     f"this works for them {e.success_rate:.0%} of the time)")
    return "\n".join(lines)
