"""The local models on ONNX Runtime, exported once from the torch weights and cached on disk:
MiniLM's sentence and token embeddings here, the verifier's cross-encoder (its LoRA adapter
merged) in `costmesh.verification.cross_encoder` with the helpers below.

Same numerics as torch by default (fp32; cosine to the torch embeddings >= 0.99999, cross-encoder
logits within 1e-5): the verifier's and the router's calibrations hold unchanged. On this
project's 2-core CPU, one text per call runs about 2.3x faster than torch and a batch about 1.3x.

`int8=True` gives the embedder quantised from that export (`quantized`): ONNX Runtime's dynamic
quantisation, weights int8 per output channel (per tensor, its default, moves the vectors about
five times further). Dynamic quantisation scales a pass's activations together, so in a batch a
text's vector would depend on the texts beside it (cosine 0.995 to itself alone): the int8 model
reads one text per pass, and a text always gets the same vector. A different model, with its own
id (`model_files.INT8_MODEL_ID`): what is calibrated on its vectors (the router's artifact, the
verifier's, the cache's index) names it.

Export (first start only) needs torch and onnx; serving needs onnxruntime and the tokenizer
(`python -m costmesh.tooling.onnx_export` makes the exports ahead of time, as the images do). The
file is keyed by a hash of the weights, the tokenizer, the adapter and the export format, written
to a temporary file and renamed, so several processes starting at once never read half a file.
`COSTMESH_ONNX_CACHE` names the directory (default `~/.cache/costmesh/onnx`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from costmesh.model_files import ModelSettings

FORMAT = "costmesh-onnx-1"  # part of every cache key: bump when the exported graphs change
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QUANT = "int8-per-channel-1"  # names the quantised copy: bump when its recipe changes


def cache_dir() -> Path:
    configured = ModelSettings.load().onnx_cache
    return Path(configured) if configured else Path.home() / ".cache" / "costmesh" / "onnx"


def cache_key(*parts: bytes | Path) -> str:
    digest = hashlib.sha256(f"{FORMAT}|opset{OPSET}".encode())
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(part)
    return digest.hexdigest()[:24]


def weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin"} or p.name == "tokenizer.json")


def cached_export(name: str, build: Callable[[], tuple[Any, tuple, list[str]]]) -> Path:
    """The cached file `name`, exported from `build()` = (module, example inputs, output names)
    when missing. A cache directory that cannot be written falls back to a private temporary one."""
    target = cache_dir() / name
    if target.exists():
        return target
    try:
        import torch
    except ImportError:  # an image that ships its exports (the cache's, the classifier's) has no torch
        from costmesh.errors import ConfigError

        raise ConfigError(f"no ONNX export {name} in {target.parent}, and making one needs torch, which is not "
                          "installed: make the exports where it is (python -m costmesh.tooling.onnx_export DIR) "
                          "and point COSTMESH_ONNX_CACHE at DIR, or install costmesh[models-export]") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
    except OSError:
        target = Path(tempfile.mkdtemp(prefix="costmesh-onnx-")) / name
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        module, example, outputs = build()
        axes = {n: {0: "batch", 1: "seq"} for n in INPUTS}
        axes.update({n: {0: "batch", 1: "seq"} if n == "token_embeddings" else {0: "batch"} for n in outputs})
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches: the inputs are padded
            torch.onnx.export(module.eval(), example, tmp, input_names=list(INPUTS), output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def quantized(source: Path) -> Path:
    """The int8 copy of the export `source` (cached beside it, written once like the export)."""
    target = source.with_name(f"{source.stem}-{QUANT}.onnx")
    if target.exists():
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(source), tmp, per_channel=True, weight_type=QuantType.QInt8)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)  # 0: one per core
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the cores are shared
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def example_inputs(tokenizer: Any, second: Sequence[str] | None = None) -> tuple:
    """Padded example inputs: tracing with an all-ones mask would freeze the mask branches."""
    first = ["a short text", "another, somewhat longer text to trace the graph with"]
    enc = tokenizer(first, list(second) if second else None, padding=True, return_tensors="pt")
    return tuple(enc[name] for name in INPUTS)


def feeds(enc: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(enc[name], dtype=np.int64) for name in INPUTS}


def mean_pool(hidden: Any, mask: Any, floor: float) -> Any:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=floor)


class OnnxSentenceModel:
    """What costmesh reads of a sentence-transformers MiniLM (`encode`, `tokenizer`,
    `max_seq_length`, `get_embedding_dimension`), run by ONNX Runtime."""

    def __init__(self, model_dir: str | Path, threads: int = 1, *, int8: bool = False):
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        config = model_dir / "sentence_bert_config.json"
        self.max_seq_length = int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.exists() else 256
        self._dims = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        path = cached_export(f"sentence-{cache_key(*weight_files(model_dir))}.onnx", lambda: _sentence_graph(model_dir))
        self.per_pass = 0  # texts per forward pass: 0 = as the caller batches them
        if int8:
            path, self.per_pass = quantized(path), 1
        self.session = session(path, threads)

    def get_embedding_dimension(self) -> int:
        return self._dims

    def encode(self, texts: Sequence[str], batch_size: int = 32, *, normalize_embeddings: bool = False,
               output_value: str | None = "sentence_embedding", **_: Any) -> Any:
        """Like `SentenceTransformer.encode`: an array of sentence vectors, or with `output_value=None`
        one dict per text (sentence_embedding, token_embeddings, attention_mask; numpy arrays)."""
        texts = list(texts)
        rows: list[Any] = []
        batch_size = self.per_pass or max(1, batch_size)
        for start in range(0, len(texts), batch_size):
            enc = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            if output_value is None:
                tokens, vectors = self.session.run(["token_embeddings", "sentence_embedding"], feeds(enc))
                rows.extend({"sentence_embedding": v, "token_embeddings": t, "attention_mask": m}
                            for v, t, m in zip(vectors, tokens, enc["attention_mask"]))
            else:
                (vectors,) = self.session.run(["sentence_embedding"], feeds(enc))
                rows.extend(vectors)
        if output_value is None:
            return rows
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dims)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _sentence_graph(model_dir: Path) -> tuple[Any, tuple, list[str]]:
    import torch

    from costmesh.model_files import load_sentence_transformer

    st = load_sentence_transformer(str(model_dir))

    class Sentence(torch.nn.Module):  # the Transformer, mean Pooling and Normalize modules of MiniLM
        def __init__(self, bert: Any):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            pooled = mean_pool(hidden, attention_mask, 1e-9)
            return hidden, torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Sentence(st[0].auto_model), example_inputs(st.tokenizer), ["token_embeddings", "sentence_embedding"]
