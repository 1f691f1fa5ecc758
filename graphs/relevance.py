"""How well a situation matches each intervention tool's "when to use" description.

This is the agent's general knowledge, the same for everyone: the starting belief the
policy then corrects with what worked for this person.
"""

from __future__ import annotations

import numpy as np
from langchain_core.embeddings import Embeddings

from tools.catalog import INTERVENTION_TOOLS, TOOL_SPECS


class ToolRelevance:
    """Cosine similarity of a situation to each intervention tool's description."""

    def __init__(self, embeddings: Embeddings, tools: tuple[str, ...] | list[str] | None = None) -> None:
        self.embeddings = embeddings
        self.tools = tuple(tools if tools is not None else INTERVENTION_TOOLS)
        self._matrix: np.ndarray | None = None

    async def setup(self) -> None:
        """Embed the descriptions once (idempotent)."""
        if self._matrix is None:
            vectors = await self.embeddings.aembed_documents([TOOL_SPECS[t].when_to_use for t in self.tools])
            matrix = np.asarray(vectors, dtype=np.float32)
            self._matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    @property
    def matrix(self) -> np.ndarray:
        """The descriptions' unit vectors, one row per tool (after :meth:`setup`)."""
        if self._matrix is None:
            raise RuntimeError("ToolRelevance.setup() has not run")
        return self._matrix

    async def scores(self, vector: list[float]) -> dict[str, float]:
        """Similarity per tool for a situation's embedding."""
        await self.setup()
        assert self._matrix is not None
        v = np.asarray(vector, dtype=np.float32)
        sims = self._matrix @ (v / (np.linalg.norm(v) or 1.0))
        return {t: float(s) for t, s in zip(self.tools, sims, strict=True)}
