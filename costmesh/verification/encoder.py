"""Sentence and token embeddings of MiniLM in one forward pass.

The learned verifier aligns the contextual token vectors of the two texts (BERTScore-like),
so it needs both the pooled sentence vector and the per-token vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costmesh.length_chunks import text_chunks


@dataclass(frozen=True)
class Encoded:
    vector: np.ndarray  # (d,) unit length
    tokens: np.ndarray  # (k, d) unit-length rows, special tokens removed (k >= 1)


def encode_full(model: Any, texts: list[str], batch_size: int = 64) -> list[Encoded]:
    """Encode `texts` with a sentence-transformers model, keeping token embeddings."""
    if not texts:
        return []
    out: list[Encoded | None] = [None] * len(texts)
    for chunk in text_chunks(model, texts, batch_size):  # passes of like length: little padding
        rows = model.encode([texts[i] for i in chunk], batch_size=len(chunk), output_value=None,
                            show_progress_bar=False)
        for position, row in zip(chunk, rows):
            out[position] = _encoded(row)
    return out  # type: ignore[return-value]


def _array(value: Any) -> np.ndarray:
    """A torch tensor (sentence-transformers) or a numpy array (ONNX Runtime) as numpy."""
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value)


def _encoded(row: dict) -> Encoded:
    vector = np.array(_array(row["sentence_embedding"]), dtype=np.float32)
    vector /= max(float(np.linalg.norm(vector)), 1e-12)
    mask = _array(row["attention_mask"]).astype(bool)
    tokens = _array(row["token_embeddings"]).astype(np.float32)[mask]
    if len(tokens) > 2:  # drop [CLS] and [SEP]
        tokens = tokens[1:-1]
    tokens = tokens / np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
    return Encoded(vector, tokens.astype(np.float32))
