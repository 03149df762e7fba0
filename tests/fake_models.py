"""A stand-in for the sentence-transformers model behind `costmesh.embeddings.Embedder`."""

from __future__ import annotations

import numpy as np


class FakeModel:
    """Counts forward passes and the texts in each; a unit vector per text from its length."""

    def __init__(self):
        self.calls: list[list[str]] = []

    @property
    def sizes(self) -> list[int]:
        """Texts per forward pass."""
        return [len(call) for call in self.calls]

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts, **kwargs):
        self.calls.append(list(texts))
        rows = np.array([[len(t), 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
