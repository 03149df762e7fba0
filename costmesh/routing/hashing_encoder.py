"""A dependency-free stand-in for MiniLM: hashed bag of words and bigrams (`ngrams.word_ngrams`),
signed, unit length.

Much weaker than MiniLM, but real features computed in microseconds: the tests train and
serve small routers with it. Its model id is "hashing-bow-<dims>".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .ngrams import word_ngrams


class HashingEncoder:
    def __init__(self, dims: int = 384):
        self.dims = dims
        self.model_id = f"hashing-bow-{dims}"

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        return value % self.dims, 1.0 if (value >> 63) & 1 else -1.0

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        rows = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for token in word_ngrams(text):
                j, sign = self._bucket(token)
                rows[i, j] += sign
            norm = np.linalg.norm(rows[i])
            if norm > 0:
                rows[i] /= norm
        return rows.tolist()

    async def embed_one(self, text: str) -> list[float]:
        return self.encode([text])[0]

    async def aclose(self) -> None:
        return None
