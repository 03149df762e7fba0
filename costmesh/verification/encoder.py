"""Sentence and token embeddings of MiniLM in one forward pass.

The learned verifier aligns the contextual token vectors of the two texts (BERTScore-like),
so it needs both the pooled sentence vector and the per-token vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Encoded:
    vector: np.ndarray  # (d,) unit length
    tokens: np.ndarray  # (k, d) unit-length rows, special tokens removed (k >= 1)


def encode_full(model: Any, texts: list[str], batch_size: int = 64) -> list[Encoded]:
    """Encode `texts` with a sentence-transformers model, keeping token embeddings."""
    if not texts:
        return []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
    rows = model.encode([texts[i] for i in order], batch_size=batch_size, output_value=None,
                        show_progress_bar=False)
    out: list[Encoded | None] = [None] * len(texts)
    for position, row in zip(order, rows):
        vector = np.asarray(row["sentence_embedding"].float().cpu().numpy(), dtype=np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        mask = row["attention_mask"].cpu().numpy().astype(bool)
        tokens = row["token_embeddings"].float().cpu().numpy()[mask]
        if len(tokens) > 2:  # drop [CLS] and [SEP]
            tokens = tokens[1:-1]
        tokens = tokens / np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
        out[position] = Encoded(vector, tokens.astype(np.float32))
    return out  # type: ignore[return-value]
