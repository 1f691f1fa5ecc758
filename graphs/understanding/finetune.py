"""Fine-tuning the understanding encoder's top layers (``sam2voice train encoder``).

Needs torch (``pip install -e '.[train]'``); nothing at run time does. The trunk (MiniLM's
first ``TRUNK_LAYERS`` layers, int8 as shipped) is frozen, so its hidden states are computed
once with onnxruntime; only the last layers are trained, starting from MiniLM's own weights,
with three small heads on the pooled vector: the act (class-balanced softmax), danger
(crisis or not, positives weighted up) and, on answers about a suggestion, whether it helped.
Those heads are thrown away afterwards: ``sam2voice train understanding`` fits the shipped
heads on the tuned vectors. Only the train split is used; validation stays for thresholds.
Leaving one writer's file out, three layers beat two (danger recall at 2 % false alarms
0.38 -> 0.47) for one more layer's cost (~0.35 ms); four epochs at lr 1e-4 (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graphs.understanding.acts import ACTS
from graphs.understanding.corpus import Split, load_corpus
from graphs.understanding.encoder import ENCODER, original_layers, save_top, stored_layers
from memories.embeddings import LAYER_PARAMS, TRUNK_LAYERS, LocalMiniLMEmbeddings
from memories.records import MAX_TEXT_CHARS

Progress = Callable[[str], None]
EPOCHS, BATCH, LR, HEAD_LR, SEED = 4, 32, 1e-4, 1e-3, 0
REFERENCE_TEXTS = ("hi", "ok did that, what's next", "nah that breathing thing did nothing",
                   "everyone would be better off without me")


def _modules() -> Any:
    try:
        import torch
    except ImportError as exc:  # the runtime never needs torch; training does
        raise RuntimeError("training the encoder needs torch: pip install -e '.[train]'") from exc
    nn = torch.nn
    functional = torch.nn.functional

    class Layer(nn.Module):
        """A post-LayerNorm BERT layer, the same arithmetic as the exported graph."""

        def __init__(self, weights: dict[str, np.ndarray]) -> None:
            super().__init__()
            self.p = nn.ParameterDict({k: nn.Parameter(torch.from_numpy(weights[k].copy())) for k in LAYER_PARAMS})

        def forward(self, h: Any, bias: Any) -> Any:
            p = self.p
            batch, tokens, dims = h.shape

            def heads(x: Any) -> Any:
                return x.view(batch, tokens, 12, 32).transpose(1, 2)

            q, k, v = heads(h @ p["wq"] + p["bq"]), heads(h @ p["wk"] + p["bk"]), heads(h @ p["wv"] + p["bv"])
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(32) + bias[:, None, None, :]
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dims)
            h1 = functional.layer_norm(context @ p["wo"] + p["bo"] + h, (dims,), p["g1"], p["b1"], 1e-12)
            inner = functional.gelu(h1 @ p["wi"] + p["bi"])
            return functional.layer_norm(inner @ p["w2"] + p["b2"] + h1, (dims,), p["g2"], p["b2n"], 1e-12)

    class Top(nn.Module):
        def __init__(self, layers: list[dict[str, np.ndarray]]) -> None:
            super().__init__()
            self.layers = nn.ModuleList([Layer(w) for w in layers])
            self.act, self.danger, self.polarity = nn.Linear(384, len(ACTS)), nn.Linear(384, 1), nn.Linear(384, 1)

        def embed(self, states: list[np.ndarray]) -> Any:
            longest = max(s.shape[0] for s in states)
            h = torch.zeros(len(states), longest, 384)
            mask = torch.zeros(len(states), longest)
            for j, s in enumerate(states):
                h[j, : s.shape[0]] = torch.from_numpy(s)
                mask[j, : s.shape[0]] = 1
            bias = (1 - mask) * -1e9
            for layer in self.layers:
                h = layer(h, bias)
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return functional.normalize(pooled, dim=-1)

        def forward(self, states: list[np.ndarray]) -> tuple[Any, Any, Any]:
            v = self.embed(states) * 10.0  # unit vectors, scaled so the heads can be sharp
            return self.act(v), self.danger(v).squeeze(-1), self.polarity(v).squeeze(-1)

    return torch, Top


def finetune_encoder(*, out: Path = ENCODER, progress: Progress | None = None) -> dict[str, Any]:
    """Train the top layers on the train split and save them; returns a summary."""
    torch, top_class = _modules()
    say = progress or (lambda _m: None)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    start = time.perf_counter()
    train = load_corpus(heldout=False)[Split.TRAIN]
    say(f"computing the frozen trunk's states for {len(train)} training messages")
    states = LocalMiniLMEmbeddings().trunk_states([i.text[:MAX_TEXT_CHARS] for i in train])
    net = top_class(original_layers())
    acts = torch.tensor([ACTS.index(i.act.value) for i in train])
    crisis = torch.tensor([float(i.act.value == "crisis") for i in train])
    answered = torch.tensor([i.outcome.value in ("helped", "not_helped") for i in train])
    helped = torch.tensor([float(i.outcome.value == "helped") for i in train])
    counts = np.bincount(acts.numpy(), minlength=len(ACTS))
    act_weight = torch.tensor(len(train) / (len(ACTS) * np.maximum(counts, 1)), dtype=torch.float32)
    danger_weight = (len(train) - crisis.sum()) / crisis.sum().clamp(min=1)
    heads = [*net.act.parameters(), *net.danger.parameters(), *net.polarity.parameters()]
    opt = torch.optim.AdamW([{"params": net.layers.parameters(), "lr": LR}, {"params": heads, "lr": HEAD_LR}],
                            weight_decay=0.01)
    steps = EPOCHS * math.ceil(len(train) / BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / (0.1 * steps)) * max(0.0, 1 - s / steps))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for epoch in range(EPOCHS):
        order = list(range(len(train)))
        rng.shuffle(order)
        total = 0.0
        for s in range(0, len(order), BATCH):
            idx = torch.tensor(order[s:s + BATCH])
            act_logits, danger_logits, polarity_logits = net([states[j] for j in idx.tolist()])
            loss = torch.nn.functional.cross_entropy(act_logits, acts[idx], weight=act_weight)
            loss = loss + bce(danger_logits, crisis[idx], pos_weight=danger_weight)
            if (rows := answered[idx]).any():
                loss = loss + bce(polarity_logits[rows], helped[idx][rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        say(f"epoch {epoch + 1}/{EPOCHS}: loss {total / len(train):.3f} ({time.perf_counter() - start:.0f} s)")
    net.eval()
    # The references are computed with exactly the weights that ship (quantised changes, see save_top).
    layers = [{k: p.detach().numpy() for k, p in layer.p.items()} for layer in net.layers]
    rounded = top_class(stored_layers(layers))
    ref_states = LocalMiniLMEmbeddings().trunk_states(list(REFERENCE_TEXTS))
    with torch.no_grad():
        refs = rounded.embed(ref_states).numpy()
    meta = {"trunk_layers": TRUNK_LAYERS, "train": len(train), "epochs": EPOCHS, "lr": LR, "seed": SEED,
            "trained_at": time.strftime("%Y-%m-%d")}
    save_top(out, layers, meta, {"texts": np.frombuffer("\n".join(REFERENCE_TEXTS).encode(), dtype=np.uint8),
                                 "vectors": refs})
    say(f"saved {out} ({out.stat().st_size // 1024} KB)")
    return {"encoder": str(out), **meta, "seconds": round(time.perf_counter() - start, 1)}
