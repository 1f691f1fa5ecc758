"""The policy's "same kind of moment" (graphs.situations), on the real offline embedder."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.relevance import ToolRelevance
from graphs.situations import SituationSpace
from memories.embeddings import LocalMiniLMEmbeddings
from memories.population import SITUATION_KINDS


@pytest.fixture(scope="module")
def embedder() -> LocalMiniLMEmbeddings:
    return LocalMiniLMEmbeddings()


@pytest.fixture(scope="module")
async def space(embedder: LocalMiniLMEmbeddings) -> SituationSpace:
    centroids = [np.mean(embedder.embed_documents(list(texts)), axis=0) for texts in SITUATION_KINDS.values()]
    relevance = ToolRelevance(embedder)
    await relevance.setup()
    return SituationSpace([*centroids, *relevance.matrix], profile_weight=0.7)


# One person's two kinds of moment, each said three ways (written for this test, in no corpus).
STARTING = ["blank doc open for an hour and not one word", "i keep telling myself ill start the report after lunch",
            "sat down to do the tax forms and just froze"]
NERVES = ["my hands are shaking before the presentation", "heart pounding, the interview is in ten minutes",
          "feel sick with nerves about tomorrows exam"]


async def test_paraphrases_of_one_moment_are_closer_than_the_persons_other_moment(  # raw cosine fails this
        space: SituationSpace, embedder: LocalMiniLMEmbeddings) -> None:
    vectors = np.asarray(embedder.embed_documents(STARTING + NERVES))
    for i in range(len(vectors)):
        sims = space.similarity(vectors[i], vectors)
        same = [j for j in range(len(vectors)) if j != i and (j < 3) == (i < 3)]
        other = [j for j in range(len(vectors)) if (j < 3) != (i < 3)]
        assert min(sims[same]) > max(sims[other]), (i, sims.round(2))


async def test_the_same_words_count_fully_and_the_space_checks_its_inputs(
        space: SituationSpace, embedder: LocalMiniLMEmbeddings) -> None:
    vector = np.asarray(embedder.embed_query("i cant get started"))
    assert space.similarity(vector, vector[None, :])[0] == pytest.approx(1.0, abs=1e-5)
    assert space.similarity(vector, np.zeros((0, len(vector)))).shape == (0,)
    raw = SituationSpace(space.anchors, profile_weight=0.0)
    other = np.asarray(embedder.embed_query("the kitchen is a mess"))
    assert raw.similarity(vector, other[None, :])[0] == pytest.approx(float(vector @ other), abs=1e-5)
    with pytest.raises(ValueError, match="two anchor"):
        SituationSpace([vector], profile_weight=0.5)
    with pytest.raises(ValueError, match="profile_weight"):
        SituationSpace(space.anchors, profile_weight=1.5)
