"""The understanding encoder: a tuned branch of the turn's one MiniLM pass."""

from __future__ import annotations

import numpy as np

from graphs.understanding.encoder import TunedTop, UnderstandingEncoder, load_top, original_layers, shared_encoder
from graphs.understanding.heads import load_heads
from memories.embeddings import LocalMiniLMEmbeddings

TEXTS = ["hi", "i did the first two steps but now im stuck and idk what to do",
         "everyone would be better off without me honestly", "nah that didnt help"]


def test_the_branch_with_minilms_own_weights_is_minilm_and_the_retrieval_embedding_is_unchanged(
        minilm: LocalMiniLMEmbeddings) -> None:
    """The graph edit is exact: a copy of the top layers with the original weights gives the
    model's own output, and adding the branch leaves the retrieval embedding bit for bit."""
    own = TunedTop(original_layers(), "own", {}, {})
    retrieval, branch = UnderstandingEncoder(top=own).local.embed_with_tuned(TEXTS)
    assert np.abs(branch - retrieval).max() < 1e-5
    assert np.array_equal(retrieval, np.asarray(minilm.embed_documents(TEXTS)))


def test_the_shipped_tuned_layers_run_as_they_were_trained() -> None:
    """encoder.npz carries vectors its torch model computed; the ONNX branch reproduces them."""
    top = load_top()
    texts = bytes(top.references["texts"]).decode().split("\n")
    vectors = np.asarray(shared_encoder().embed_documents(texts))
    cosines = (vectors * top.references["vectors"]).sum(axis=1)
    assert cosines.min() > 0.9999, cosines


def test_the_shipped_heads_were_trained_on_the_shipped_encoder() -> None:
    assert load_heads().meta["embedding"] == shared_encoder().model_id


def test_one_pass_gives_both_vectors_and_they_differ(minilm: LocalMiniLMEmbeddings) -> None:
    """The tuned vector is a different reading of the message; the retrieval one is MiniLM's."""
    mine, retrieval = shared_encoder().encode(["that breathing thing did nothing"])[0]
    assert np.allclose(retrieval, minilm.embed_query("that breathing thing did nothing"), atol=1e-6)
    assert float(np.dot(mine, retrieval)) < 0.99


def test_calls_wanting_only_the_retrieval_embedding_get_the_vectors_the_turns_one_pass_computes() -> None:
    local = shared_encoder().local
    retrieval, _ = local.embed_with_tuned(TEXTS)
    assert np.array_equal(np.asarray(local.embed_documents(TEXTS)), retrieval)
    assert np.array_equal(np.asarray(local.embed_query(TEXTS[1])), retrieval[1])
