"""How well "the same kind of moment" is told apart, per personas file (graphs.situations).

For every utterance of every persona: of its nearest other utterances of the same person
(as many as its situation has, up to 5), the share that are the same situation. Printed for
raw MiniLM cosine and for the situation profile the policy uses.

    .venv/bin/python scripts/situation_purity.py tests/data/personas_tuning.json tests/data/personas.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.eval.learning import load_personas  # noqa: E402
from graphs.relevance import ToolRelevance  # noqa: E402
from graphs.situations import SituationSpace  # noqa: E402
from memories.embeddings import LocalMiniLMEmbeddings  # noqa: E402
from memories.population import SITUATION_KINDS  # noqa: E402


def purity(similarity: np.ndarray, labels: np.ndarray) -> list[float]:
    shares = []
    for i in range(len(labels)):
        order = [j for j in np.argsort(-similarity[i]) if j != i]
        k = min(5, int((labels == labels[i]).sum()) - 1)
        if k > 0:
            shares.append(float(np.mean(labels[order[:k]] == labels[i])))
    return shares


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("personas", nargs="+", type=Path)
    parser.add_argument("--profile-weight", type=float, default=0.7)
    args = parser.parse_args()
    embedder = LocalMiniLMEmbeddings()
    relevance = ToolRelevance(embedder)
    await relevance.setup()
    centroids = [np.mean(embedder.embed_documents(list(texts)), axis=0) for texts in SITUATION_KINDS.values()]
    space = SituationSpace([*centroids, *relevance.matrix], args.profile_weight)
    for path in args.personas:
        raw, profiled = [], []
        for persona in load_personas(path).personas:
            texts = [u for s in persona.situations for u in s.utterances]
            labels = np.array([i for i, s in enumerate(persona.situations) for _ in s.utterances])
            vectors = np.asarray(embedder.embed_documents(texts))
            raw += purity(vectors @ vectors.T, labels)
            profiled += purity(np.array([space.similarity(v, vectors) for v in vectors]), labels)
        print(f"{path.name}: raw cosine {np.mean(raw):.3f}, situation profile {np.mean(profiled):.3f}")


if __name__ == "__main__":
    asyncio.run(main())
