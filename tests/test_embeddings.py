"""Embeddings: the offline model, the Redis cache, and validation of what models return."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from memories.embeddings import CachedEmbeddings, LocalMiniLMEmbeddings, build_base_embeddings
from memories.errors import InvalidInput
from memories.stack import MemoryStack, open_memory
from tests.conftest import memory_settings


def test_the_offline_model_understands_paraphrases(minilm: LocalMiniLMEmbeddings) -> None:
    a, b, c = np.array(minilm.embed_documents([
        "I can't get started on my homework", "I'm unable to begin my assignment", "The train leaves at noon"]))
    assert a.shape == (384,)
    assert math.isclose(float(np.linalg.norm(a)), 1.0, rel_tol=1e-4)
    assert a @ b > 0.6 > 0.2 > a @ c


def test_google_provider_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="GOOGLE_API_KEY"):
        build_base_embeddings("google")
    with pytest.raises(InvalidInput, match="unknown embedding provider"):
        build_base_embeddings("openai")  # type: ignore[arg-type]


class CountingEmbeddings(Embeddings):
    """Wraps the real model and counts the texts it is asked to embed."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


async def test_identical_texts_are_embedded_once(redis_url: str, minilm: LocalMiniLMEmbeddings) -> None:
    counting = CountingEmbeddings(minilm)
    settings = memory_settings()
    stack = await open_memory(redis_url, settings, base_embeddings=(counting, minilm.model_id, minilm.dims))
    counting.embedded.clear()  # the first stack of a process embeds the kinds of moment (memories.population)
    try:
        await stack.embeddings.aembed_documents(["same words", "same words", "other words"])
        await stack.embeddings.aembed_query("same words")
        assert counting.embedded == ["same words", "other words"]
        assert stack.embeddings.hits == 1
    finally:
        await stack.aclose()
    # A second process (new stack, same Redis) reuses the cached vector too.
    again = await open_memory(redis_url, settings, base_embeddings=(counting, minilm.model_id, minilm.dims))
    try:
        await again.embeddings.aembed_query("other words")
        assert counting.embedded == ["same words", "other words"]
    finally:
        await again.aclose()


class BrokenEmbeddings(Embeddings):
    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vector for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vector


@pytest.mark.parametrize("vector,problem", [([0.1] * 383, "dimension 383"),
                                            ([float("nan")] + [0.1] * 383, "NaN"),
                                            ([float("inf")] + [0.1] * 383, "NaN or infinite")])
async def test_bad_vectors_from_a_model_are_refused_and_nothing_is_written(
    stack: MemoryStack, vector: list[float], problem: str
) -> None:
    from memories.interventions import InterventionMemory

    interventions = stack.registry.get(InterventionMemory)
    assert interventions is not None
    broken = CachedEmbeddings(BrokenEmbeddings(vector), model_id="broken", dims=384, cache=None)
    object.__setattr__(interventions.backend, "embeddings", broken)
    with pytest.raises(InvalidInput, match=problem):
        await interventions.save("ada", {"text": "x", "user_context": "y"})
    assert await interventions.index.count("ada") == 0


async def test_index_names_carry_the_embedding_model_and_dimension(stack: MemoryStack) -> None:
    names = {e.name: e.index.name for e in stack.registry}
    assert names["interventions"].endswith(":interventions:minilm-l6-int8-384-f16")
    assert names["reflections"].endswith(":reflections:minilm-l6-int8-384-f16")
    assert names["profile"].endswith(":profile")  # no vectors, no model in the name


async def test_the_cache_keeps_no_plain_text_of_what_people_said(stack: MemoryStack) -> None:
    await stack.embeddings.aembed_query("my secret worry about the exam")
    keys = [k async for k in stack.client.scan_iter(match=f"{stack.registry.backend.settings.namespace}:embedcache:*")]
    assert keys
    for key in keys:
        stored = await stack.client.get(key)  # the vector's float32 bytes, nothing else
        assert stored is not None and b"secret worry" not in stored and len(stored) == 4 * stack.embeddings.dims


async def test_a_turn_embeds_what_the_person_said_once(stack: MemoryStack) -> None:
    from memories.interventions import InterventionMemory

    interventions = stack.registry.get(InterventionMemory)
    assert interventions is not None
    said = "I am frozen in front of the laundry pile"
    await interventions.similar_successes("ada", said)  # retrieval embeds and caches it
    misses = stack.embeddings.misses
    await interventions.save("ada", {"text": "Pick up three socks.", "user_context": said})
    assert stack.embeddings.misses == misses  # recording the intervention reuses the vector
    # Bulk writes do not fill the cache with vectors nobody will query again.
    await interventions.record_many("ada", [{"text": "t", "user_context": f"imported line {n}"} for n in range(5)])
    keys = [k async for k in stack.client.scan_iter(match=f"{stack.registry.backend.settings.namespace}:embedcache:*")]
    assert len(keys) == 1


def test_a_batch_embeds_each_text_as_it_would_be_embedded_alone(minilm: LocalMiniLMEmbeddings) -> None:
    """Batches are padded to their longest text and run in one pass; the padding must not
    move any vector (masked attention, masked mean pooling)."""
    texts = ["ok", "nope", "the lights are too bright in here",
             "I can't get started on my essay and it is due tomorrow morning, please help",
             "I have been scrolling my phone for two hours instead of doing the laundry and the dishes, "
             "and now it is late and I feel awful about the whole evening"] * 30  # > one batch of 64
    alone = np.array([minilm.embed_query(t) for t in texts[:5]] * 30)
    batched = np.array(minilm.embed_documents(texts))
    assert batched.shape == (150, 384)
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-6)


async def test_the_cached_embedder_batches_misses_and_matches_one_by_one(stack: MemoryStack,
                                                                          minilm: LocalMiniLMEmbeddings) -> None:
    texts = [f"I keep putting off task number {n}, it has been {n} days" for n in range(40)]
    misses = stack.embeddings.misses
    batched = await stack.embeddings.aembed_documents(texts, remember=False)
    assert stack.embeddings.misses == misses + 40
    np.testing.assert_allclose(batched, [minilm.embed_query(t) for t in texts], rtol=0, atol=1e-6)
