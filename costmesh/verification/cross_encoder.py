"""A cross-encoder over the packaged MiniLM: both questions read together, one logit out.

The bi-encoder compares two sentence vectors computed apart, so "Delete this email" and
"Delete all emails" look alike to it; a cross-encoder attends across the pair. It is the
packaged MiniLM with a rank-8 LoRA adapter on every linear layer of its six blocks plus a
linear head over the mean-pooled tokens: 331,776 + 385 trained weights, stored in the
verifier artifact as float16 arrays, never a copy of the base model.

Training uses peft (`costmesh[dev]`). Serving needs neither peft nor training code: the adapter
is merged into a private copy of the base weights at load (W += alpha/r * B @ A).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from costmesh import onnx_models
from costmesh.errors import ConfigError
from costmesh.length_chunks import token_chunks

TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
PREFIX = "ce."


@dataclass(frozen=True)
class Adapter:
    """The trained weights: LoRA factors per base module, and the head."""

    rank: int
    alpha: float
    max_length: int
    factors: dict[str, tuple[np.ndarray, np.ndarray]]  # module path in BertModel -> (A (r, in), B (out, r))
    head_weight: np.ndarray  # (hidden,)
    head_bias: float

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"{PREFIX}config": np.asarray([self.rank, self.alpha, self.max_length], dtype=np.float64),
               f"{PREFIX}head_weight": self.head_weight.astype(np.float32),
               f"{PREFIX}head_bias": np.asarray(self.head_bias, dtype=np.float32)}
        for name, (a, b) in self.factors.items():
            out[f"{PREFIX}A:{name}"] = a.astype(np.float16)
            out[f"{PREFIX}B:{name}"] = b.astype(np.float16)
        return out

    @classmethod
    def from_arrays(cls, data: Any) -> Adapter | None:
        if f"{PREFIX}config" not in data:
            return None
        rank, alpha, max_length = data[f"{PREFIX}config"].tolist()
        factors = {}
        for key in data:
            if key.startswith(f"{PREFIX}A:"):
                name = key[len(f"{PREFIX}A:"):]
                factors[name] = (np.asarray(data[key], dtype=np.float32),
                                 np.asarray(data[f"{PREFIX}B:{name}"], dtype=np.float32))
        return cls(int(rank), float(alpha), int(max_length), factors,
                   np.asarray(data[f"{PREFIX}head_weight"], dtype=np.float32), float(data[f"{PREFIX}head_bias"]))

    @classmethod
    def load(cls, path: str | Path) -> Adapter:
        """The cross-encoder of a verifier artifact or of a training checkpoint."""
        try:
            with np.load(path, allow_pickle=False) as data:
                adapter = cls.from_arrays({k: data[k] for k in data.files})
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cross-encoder file {path}: {exc}") from None
        if adapter is None:
            raise ConfigError(f"cross-encoder file {path}: no cross-encoder in it")
        return adapter

    @property
    def size(self) -> int:
        return sum(a.size + b.size for a, b in self.factors.values()) + self.head_weight.size + 1


def _pooled(hidden: Any, mask: Any) -> Any:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class CrossEncoder:
    """Scores (query, candidate) pairs: the logit of P(same answer)."""

    def __init__(self, adapter: Adapter, model_path: str | None = None, batch_size: int = 32):
        import torch

        from costmesh.model_files import default_model_path, load_sentence_transformer

        base = load_sentence_transformer(model_path or default_model_path())
        self.tokenizer = base.tokenizer
        self.model = base[0].auto_model
        self.model.eval()
        self.adapter = adapter
        self.batch_size = batch_size
        modules = dict(self.model.named_modules())
        scale = adapter.alpha / adapter.rank
        with torch.no_grad():
            for name, (a, b) in adapter.factors.items():
                if name not in modules:
                    raise ConfigError(f"the cross-encoder adapter names {name!r}, which the base model lacks")
                weight = modules[name].weight
                weight += scale * torch.from_numpy(b) @ torch.from_numpy(a)
            self._head = torch.nn.Linear(len(adapter.head_weight), 1)
            self._head.weight.copy_(torch.from_numpy(adapter.head_weight)[None, :])
            self._head.bias.fill_(adapter.head_bias)

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import torch

        out = np.zeros(len(pairs), dtype=np.float64)
        if not pairs:
            return out
        chunks = token_chunks(self.tokenizer, [a for a, _ in pairs], [b for _, b in pairs],
                              limit=self.adapter.max_length, max_chunk=self.batch_size)  # passes of like length
        with torch.inference_mode():
            for chunk in chunks:
                scores = pooled_logits(self.model, self._head, self.tokenizer, [pairs[i] for i in chunk],
                                       self.adapter.max_length)
                out[chunk] = scores.double().numpy()
        return out


class OnnxCrossEncoder:
    """`CrossEncoder.logits` on ONNX Runtime: the merged model exported once (keyed by the base
    weights and the adapter's arrays) and cached on disk (`costmesh.onnx_models`). `int8`: the
    export quantised as the embedder's is (`onnx_models.quantized`), one pair per pass, so a
    pair's logit never depends on the pairs beside it; a verifier must be calibrated on it."""

    def __init__(self, adapter: Adapter, model_path: str | None = None, batch_size: int = 32, threads: int = 1,
                 *, int8: bool = False):
        from transformers import AutoTokenizer

        from costmesh.model_files import default_model_path

        model_dir = Path(model_path or default_model_path())
        self.adapter = adapter
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        adapter_bytes = b"".join(np.ascontiguousarray(a).tobytes() for a in adapter.arrays().values())
        name = f"cross-{onnx_models.cache_key(*onnx_models.weight_files(model_dir), adapter_bytes)}.onnx"
        path = onnx_models.cached_export(name, lambda: _cross_graph(adapter, model_dir))
        if int8:
            path, self.batch_size = onnx_models.quantized(path), 1
        self.session = onnx_models.session(path, threads)

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.zeros(len(pairs), dtype=np.float64)
        if not pairs:
            return out
        firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
        for chunk in token_chunks(self.tokenizer, firsts, seconds, limit=self.adapter.max_length,
                                  max_chunk=self.batch_size):  # passes of like length
            enc = self.tokenizer([firsts[i] for i in chunk], [seconds[i] for i in chunk], truncation=True,
                                 max_length=self.adapter.max_length, padding=True, return_tensors="np")
            (scores,) = self.session.run(["logits"], onnx_models.feeds(enc))
            out[chunk] = scores.astype(np.float64)
        return out


def _cross_graph(adapter: Adapter, model_dir: Path) -> tuple[Any, tuple, list[str]]:
    """The merged cross-encoder as one module (tokens in, logits out), with example inputs."""
    import torch

    merged = CrossEncoder(adapter, model_path=str(model_dir))

    class Cross(torch.nn.Module):
        def __init__(self, bert: Any, head: Any):
            super().__init__()
            self.bert, self.head = bert, head

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            return self.head(_pooled(hidden, attention_mask)).squeeze(-1)

    example = onnx_models.example_inputs(merged.tokenizer, ["a second text", "and another one to read with it"])
    return Cross(merged.model, merged._head), example, ["logits"]


def load_cross_encoder(adapter: Adapter, backend: str = "onnx", threads: int = 1, *, int8: bool = False) -> Any:
    """The cross-encoder of `adapter` on `backend` ("onnx", the default, or "torch"); `int8`
    (ONNX Runtime only) when the verifier was calibrated on the quantised one."""
    from costmesh.errors import ConfigError
    from costmesh.model_files import checked_backend

    if checked_backend(backend) == "onnx":
        return OnnxCrossEncoder(adapter, threads=threads, int8=int8)
    if int8:
        raise ConfigError("the verifier's cross-encoder is calibrated int8: it runs on the onnx backend only "
                          "(COSTMESH_MODEL_BACKEND)")
    return CrossEncoder(adapter)


def export(model: Any, head: Any, rank: int, alpha: float, max_length: int) -> Adapter:
    """The adapter of a peft-wrapped BertModel and its head, as numpy arrays."""
    factors = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            factors[name.removeprefix("base_model.model.")] = (
                module.lora_A["default"].weight.detach().numpy().copy(),
                module.lora_B["default"].weight.detach().numpy().copy())
    return Adapter(rank, alpha, max_length, factors, head.weight.detach().numpy()[0].copy(),
                   float(head.bias.detach().numpy()[0]))


def load_into(model: Any, head: Any, adapter: Adapter) -> None:
    """Set a peft-wrapped model's LoRA factors and the head to `adapter`'s (the inverse of `export`)."""
    import torch

    modules = {name.removeprefix("base_model.model."): module for name, module in model.named_modules()}
    with torch.no_grad():
        for name, (a, b) in adapter.factors.items():
            if name not in modules or not hasattr(modules[name], "lora_A"):
                raise ConfigError(f"the cross-encoder adapter names {name!r}, which the model does not adapt")
            modules[name].lora_A["default"].weight.copy_(torch.from_numpy(a))
            modules[name].lora_B["default"].weight.copy_(torch.from_numpy(b))
        head.weight.copy_(torch.from_numpy(adapter.head_weight)[None, :])
        head.bias.fill_(adapter.head_bias)


def peft_model(bert: Any, rank: int, alpha: float) -> Any:
    """The base model with a LoRA adapter on every `TARGETS` layer (needs peft)."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(bert, LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(TARGETS), lora_dropout=0.0))


def pooled_logits(model: Any, head: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> Any:
    """The head's logits over the mean-pooled tokens of the pairs read together (a tensor)."""
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
    return head(_pooled(model(**enc).last_hidden_state, enc["attention_mask"])).squeeze(-1)


def train_cross_encoder(rows: Sequence[tuple[str, str, float]], *, model_path: str | None = None,
                        epochs: float = 1.0, rank: int = 8, alpha: float = 16.0, batch_size: int = 32,
                        lr: float = 5e-4, max_length: int = 96, seed: int = 0,
                        checkpoint: Path | None = None, start: Adapter | None = None,
                        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Adapter:
    """Fine-tune the adapter and head on (a, b, label) rows; each pair's order is drawn at random.

    `epochs` may be fractional (0.5 = half of the shuffled rows). With `checkpoint`, the adapter
    is saved there every 200 steps, so a cut-off run leaves its progress behind. With `start`,
    training continues from that adapter (its rank, alpha and max length) with a fresh schedule.
    """
    import torch

    from costmesh.model_files import default_model_path, load_sentence_transformer

    rng = random.Random(seed)
    torch.manual_seed(seed)
    base = load_sentence_transformer(model_path or default_model_path())
    tokenizer, bert = base.tokenizer, base[0].auto_model
    if start is not None:
        rank, alpha, max_length = start.rank, start.alpha, start.max_length
    model = peft_model(bert, rank, alpha)
    head = torch.nn.Linear(bert.config.hidden_size, 1)
    if start is not None:
        load_into(model, head, start)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    order: list[int] = []
    for _ in range(int(np.ceil(epochs))):
        epoch = list(range(len(rows)))
        rng.shuffle(epoch)
        order.extend(epoch)
    order = order[: int(len(rows) * epochs)]
    steps = max(1, (len(order) + batch_size - 1) // batch_size)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    model.train()
    started, running = time.perf_counter(), 0.0

    for step in range(steps):
        batch = [rows[i] for i in order[step * batch_size:(step + 1) * batch_size]]
        pairs = [(a, b) if rng.random() < 0.5 else (b, a) for a, b, _ in batch]
        logit = pooled_logits(model, head, tokenizer, pairs, max_length)
        target = torch.tensor([float(label) for _, _, label in batch])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 20 == 19 or step == steps - 1:
            elapsed = time.perf_counter() - started
            log(f"cross-encoder step {step + 1}/{steps} loss {running:.3f} "
                f"({elapsed / (step + 1):.2f} s/step, {elapsed / (step + 1) * (steps - step - 1) / 60:.0f} min left)")
        if checkpoint is not None and (step % 200 == 199):
            np.savez(checkpoint, **export(model, head, rank, alpha, max_length).arrays())
    model.eval()
    adapter = export(model, head, rank, alpha, max_length)
    if checkpoint is not None:
        np.savez(checkpoint, **adapter.arrays())
    return adapter
