"""When is a past moment "the same kind of moment" as this one, for the choice of what to try?

Raw sentence embeddings (MiniLM) judge short utterances mostly by their wording: two ways
one person describes the same moment ("blank page is staring at me" / "cant start
writing") are often no closer (cosine ~0.25) than two different moments of theirs, so
what helped in one kind of moment leaked into another. The **situation profile** of a
message is its position among the moments the product knows: its similarity to each kind
of moment (``memories.population.SITUATION_KINDS``, the pool's clusters) and to each
intervention's "when to use" description (``graphs.relevance``), centred and normalised.
Two messages are then compared by the correlation of their profiles, blended with the raw
cosine (``PolicySettings.profile_weight``) so exact and near repeats still count fully.

On the tuning personas this lifted the share of a message's nearest past messages that
are the same situation of that person from 0.58 to 0.69 (``docs/benchmarks.md``). Both
vectors come from the one embedding the turn already made; nothing new is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


class SituationSpace:
    """Situation profiles over a fixed set of anchor directions (unit vectors)."""

    def __init__(self, anchors: Sequence[Sequence[float]] | np.ndarray, profile_weight: float) -> None:
        matrix = np.asarray(anchors, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) < 2:
            raise ValueError("a situation space needs at least two anchor vectors")
        if not 0.0 <= profile_weight <= 1.0:
            raise ValueError("profile_weight must be between 0 and 1")
        self.anchors = _unit_rows(matrix)
        self.profile_weight = profile_weight

    def profiles(self, vectors: np.ndarray) -> np.ndarray:
        """Each row's profile: similarities to the anchors, centred, unit length."""
        sims = _unit_rows(np.atleast_2d(np.asarray(vectors, dtype=np.float32))) @ self.anchors.T
        return _unit_rows(sims - sims.mean(axis=1, keepdims=True))

    def similarity(self, vector: Sequence[float] | np.ndarray, others: np.ndarray) -> np.ndarray:
        """How much each row of ``others`` is the same kind of moment as ``vector`` (-1..1)."""
        if len(others) == 0:
            return np.zeros(0, dtype=np.float32)
        query = _unit_rows(np.atleast_2d(np.asarray(vector, dtype=np.float32)))
        rows = _unit_rows(np.asarray(others, dtype=np.float32))
        raw = rows @ query[0]
        if self.profile_weight == 0.0:
            return raw
        profile = self.profiles(rows) @ self.profiles(query)[0]
        return self.profile_weight * profile + (1.0 - self.profile_weight) * raw
