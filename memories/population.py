"""What helped other people, as counts only: the cold-start prior for someone new.

Every settled intervention of a person who agreed (``Profile.consent_pooled_learning``, on
by default) counts once in the **population counters** of its *situation cluster* and tool:
tries, successes, and how many different people contributed. The counters hold numbers
only: no text, no user id. A situation's cluster is the nearest of a fixed set of kinds of
moment (:data:`SITUATION_KINDS`), each the centroid of a few example sentences embedded
with the same model as the memories, so a message and its cluster come from one vector.

Exact forgetting, cluster-safe. The person's own contribution counts live with their data
(``{ns}:pool_contrib:{vt}:{<tag>}``, in their slot, next to their other counters), and each
(cluster, tool) they contributed to appears in the pool under an opaque token derived from
a random salt of theirs (never their id, and a new salt after every withdrawal). The pool
script sets that token's *absolute* counts, never adds a delta, so it is idempotent: a
retried write cannot count twice, a write lost between the two steps heals at the next
one, and withdrawing (consent off, or forget) sets every token of theirs to zero, which
removes exactly what they added. Each script touches one slot: the person's, or the
cluster's (``{ns}:population:{vt}:{<cluster>}:...``).

Hand-written because no library keeps consented, forgettable aggregate counts; the
scripts are a few lines each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from memories.base import MemoryBackend
from memories.connection import unavailable_as_typed_error
from memories.tracing import traced
from memories.validation import validate_user_id

#: Kinds of moment the pool is kept for, each described by a few things people say in it.
#: A message belongs to the nearest kind (cosine similarity to the kind's centroid) when it is
#: at least :data:`MIN_CLUSTER_SIMILARITY` close; otherwise it joins no cluster.
SITUATION_KINDS: dict[str, tuple[str, ...]] = {
    "starting": ("I can't get started on it", "I keep putting it off", "where do I even begin",
                 "I've been procrastinating all day", "I can't make myself start"),
    "overwhelm": ("everything is too much right now", "I have way too many things to do",
                  "my brain is overloaded", "it all feels like too much at once"),
    "distraction": ("I keep getting distracted", "I'm scrolling my phone instead of working",
                    "I lost focus again", "I can't concentrate on anything"),
    "time": ("I always lose track of time", "I'll forget to leave for my appointment",
             "I'm going to be late again", "I forget things I need to do later"),
    "anxiety": ("I'm so anxious about it", "my heart is racing and I'm panicking",
                "I'm dreading the meeting", "I feel really nervous and tense"),
    "sensory": ("it's too loud in here", "the lights are too bright", "the noise is unbearable",
                "my clothes feel awful and everything is too much for my senses"),
    "self_criticism": ("I'm so useless at this", "I never get anything done", "I'm such a failure",
                       "I'm angry at myself for messing up again"),
    "exhaustion": ("I'm exhausted", "I have no energy left", "I'm completely burned out",
                   "I'm too tired to do anything"),
    "frustration": ("this is so frustrating", "I'm really annoyed and fed up",
                    "it keeps going wrong and I'm getting angry", "I want to throw my laptop"),
    "transition": ("switching to the next thing is hard", "I can't stop what I'm doing",
                   "it's hard to move on to something else", "changing plans throws me off"),
    "boredom": ("it's so boring I can't make myself do it", "I have zero motivation",
                "this task is so dull", "I can't be bothered"),
    "rumination": ("I can't stop thinking about what I said", "my thoughts keep looping",
                   "I keep replaying it in my head", "I'm stuck overthinking"),
    "deciding": ("I can't decide what to do first", "there are too many choices",
                 "I don't know which thing to pick", "I keep going back and forth"),
    "chores": ("the house is a mess", "the dishes are piled up", "I need to do the laundry",
               "my room is a disaster"),
    "hyperfocus": ("I've been gaming for hours and can't stop", "I got sucked into a rabbit hole",
                   "I forgot to eat because I was so absorbed", "I can't pull myself away"),
}
MIN_CLUSTER_SIMILARITY = 0.25


class PoolCount(BaseModel):
    """What the pool knows about one tool in one kind of moment."""

    tries: int = Field(0, ge=0, description="Settled tries, over everyone who contributed.")
    successes: int = Field(0, ge=0, description="Of which helped.")
    people: int = Field(0, ge=0, description="How many different people contributed.")

    @property
    def rate(self) -> float:
        """Success rate with one pseudo-success and one pseudo-failure (Laplace)."""
        return (self.successes + 1) / (self.tries + 2)


# Sets one contributor token's absolute counts for one tool in one cluster, and moves the
# cluster's totals by the difference. KEYS: the cluster's tokens and totals (one slot).
# ARGV: token, tool, tries, successes.
_PUSH = """
local field = ARGV[1]
local old = redis.call('HGET', KEYS[1], field)
local old_n, old_s = 0, 0
if old then
  local space = string.find(old, ' ')
  old_n, old_s = tonumber(string.sub(old, 1, space - 1)), tonumber(string.sub(old, space + 1))
end
local n, s = tonumber(ARGV[3]), tonumber(ARGV[4])
if n > 0 then redis.call('HSET', KEYS[1], field, n .. ' ' .. s) else redis.call('HDEL', KEYS[1], field) end
if n ~= old_n then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|n', n - old_n) end
if s ~= old_s then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|s', s - old_s) end
local people = (n > 0 and 1 or 0) - (old_n > 0 and 1 or 0)
if people ~= 0 then redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|p', people) end
return n - old_n
"""

# Takes every contribution count of a person out of their hash, to be zeroed in the pool:
# merges them (with the salt they were pooled under) into 'retracting', which stays until
# the pool has them at zero, bumps the epoch (records pooled before it no longer count as
# pooled) and drops the salt (later contributions are unlinkable to these).
# KEYS: the person's contribution hash.
_RETRACT = """
local all = redis.call('HGETALL', KEYS[1])
local pending = {}
local raw = redis.call('HGET', KEYS[1], 'retracting')
if raw then pending = cjson.decode(raw) end
local salt = redis.call('HGET', KEYS[1], 'salt')
local taken = {}
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == 'c|' then
    local body = string.sub(f, 3)
    local key, kind = string.match(body, '^(.*)|([ns])$')
    if key and salt then
      local entry = taken[key] or {salt = salt, n = 0, s = 0}
      entry[kind] = tonumber(all[i + 1])
      taken[key] = entry
    end
    redis.call('HDEL', KEYS[1], f)
  end
end
for key, entry in pairs(taken) do table.insert(pending, {key = key, salt = entry.salt}) end
redis.call('HDEL', KEYS[1], 'salt')
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
if #pending > 0 then
  local encoded = cjson.encode(pending)
  redis.call('HSET', KEYS[1], 'retracting', encoded)
  return encoded
end
redis.call('HDEL', KEYS[1], 'retracting')
return '[]'
"""


def token(salt: str, cluster: str, tool: str) -> str:
    """The opaque name one person's counts for (cluster, tool) go under in the pool."""
    return hashlib.sha256(f"{salt}\x1f{cluster}\x1f{tool}".encode()).hexdigest()[:24]


class SituationClusters:
    """The fixed kinds of moment, as centroids in the memories' embedding space."""

    #: Centroids per embedding model tag: computed once per process, shared by every stack.
    _shared: ClassVar[dict[str, dict[str, list[float]]]] = {}

    def __init__(self, backend: MemoryBackend, kinds: Mapping[str, Sequence[str]] = SITUATION_KINDS) -> None:
        self._backend = backend
        self._kinds = dict(kinds)
        self._centroids: dict[str, list[float]] | None = (
            self._shared.get(backend.embeddings.tag) if kinds is SITUATION_KINDS else None)
        self._lock = asyncio.Lock()

    async def centroids(self) -> dict[str, list[float]]:
        """Each kind's centroid (embedded once per process, on first use)."""
        if self._centroids is None:
            async with self._lock:
                if self._centroids is None:
                    names = list(self._kinds)
                    texts = [t for n in names for t in self._kinds[n]]
                    vectors = await self._backend.embeddings.aembed_documents(texts, remember=False)
                    centroids, at = {}, 0
                    for name in names:
                        rows = vectors[at: at + len(self._kinds[name])]
                        at += len(rows)
                        mean = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
                        norm = math.sqrt(sum(v * v for v in mean)) or 1.0
                        centroids[name] = [v / norm for v in mean]
                    self._centroids = centroids
                    if self._kinds == SITUATION_KINDS:
                        self._shared[self._backend.embeddings.tag] = centroids
        return self._centroids

    async def nearest(self, vector: Sequence[float]) -> str | None:
        """The kind of moment ``vector`` is closest to, or None when it is close to none."""
        return (await self.nearest_many([vector]))[0]

    async def nearest_many(self, vectors: Sequence[Sequence[float]]) -> list[str | None]:
        """:meth:`nearest` of each vector, as one matrix product (a Python loop over the
        centroids cost ~0.3 ms per vector, most of a batched write's time outside the model)."""
        if not vectors:
            return []
        centroids = await self.centroids()
        names = list(centroids)
        sims = np.asarray(vectors, dtype=np.float64) @ np.asarray(list(centroids.values()), dtype=np.float64).T
        best = len(names) - 1 - np.argmax(sims[:, ::-1], axis=1)  # on a tie the later kind, as before
        return [names[b] if sims[i, b] >= MIN_CLUSTER_SIMILARITY else None for i, b in enumerate(best.tolist())]


class Population:
    """The pooled counters of one namespace, and each person's contributions to them."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.clusters = SituationClusters(backend)

    def _tokens_key(self, cluster: str) -> str:
        return self.backend.key("population", self.backend.vector_tag, "{" + cluster + "}", "tokens")

    def _counts_key(self, cluster: str) -> str:
        return self.backend.key("population", self.backend.vector_tag, "{" + cluster + "}", "counts")

    def contributions_key(self, user_id: str) -> str:
        """The person's own record of what they added to the pool (in their slot)."""
        return self.backend.person_key("pool_contrib", self.backend.vector_tag, user_id=user_id)

    @traced("population.counts")
    @unavailable_as_typed_error
    async def counts(self, cluster: str | None) -> dict[str, PoolCount]:
        """What the pool knows per tool for one kind of moment (empty for no cluster)."""
        if not cluster:
            return {}
        raw = await self.backend.client.hgetall(self._counts_key(cluster))
        found: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            tool, _, kind = field.decode().rpartition("|")
            found.setdefault(tool, {})[{"n": "tries", "s": "successes", "p": "people"}[kind]] = max(int(value), 0)
        return {tool: PoolCount(**c) for tool, c in found.items() if c.get("tries")}

    async def push(self, cluster: str, tool: str, salt: str, tries: int, successes: int) -> None:
        """Set one person's absolute counts for (cluster, tool) in the pool (idempotent)."""
        await self.backend.client.eval(_PUSH, 2, self._tokens_key(cluster), self._counts_key(cluster),
                                       token(salt, cluster, tool), tool, tries, successes)

    @traced("population.retract")
    @unavailable_as_typed_error
    async def retract(self, user_id: str) -> int:
        """Remove every contribution of the person from the pool, exactly; their counts
        leave their own hash. Safe to repeat: a retraction cut short is finished next time."""
        validate_user_id(user_id)
        key = self.contributions_key(user_id)
        pending = json.loads(await self.backend.client.eval(_RETRACT, 1, key))
        for entry in pending:
            cluster, _, tool = entry["key"].partition("|")
            await self.push(cluster, tool, entry["salt"], 0, 0)
        if pending:
            await self.backend.client.hdel(key, "retracting")
        return len(pending)

    async def contributions(self, user_id: str) -> dict[str, dict[str, int]]:
        """The person's contributions, ``{"cluster|tool": {"tries": n, "successes": s}}``."""
        raw = await self.backend.client.hgetall(self.contributions_key(validate_user_id(user_id)))
        found: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            name = field.decode()
            if name.startswith("c|"):
                key, _, kind = name[2:].rpartition("|")
                found.setdefault(key, {"tries": 0, "successes": 0})["tries" if kind == "n" else "successes"] = \
                    int(value)
        return {k: v for k, v in found.items() if v["tries"] > 0}

    async def forget(self, user_id: str) -> int:
        """Retract the person's contributions and delete their contribution record."""
        retracted = await self.retract(user_id)
        await self.backend.client.unlink(self.contributions_key(user_id))
        return retracted

    async def export(self, user_id: str) -> dict[str, Any] | None:
        """The person's contributions as plain data (None when there are none)."""
        found = await self.contributions(user_id)
        return {"key": self.contributions_key(user_id), "population_contributions": found} if found else None
