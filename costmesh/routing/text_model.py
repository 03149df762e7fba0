"""A linear model over the prompt's words: hashed TF-IDF of word unigrams and bigrams, ridge
regression on the strong-minus-weak gain.

It reads the exact wording (a subject's jargon, the form of the question) that the sentence
embedding blurs, so it errs differently and the mix of the two ranks prompts better. Scoring
one prompt is a tokenisation and a sparse dot product (microseconds, numpy only); training
needs scikit-learn.

Each word unigram and bigram (`ngrams.word_ngrams`) goes to bucket `crc32(token) mod 2^bits`.
A row is (1 + log count) * idf per bucket, scaled to unit length. Only buckets seen in at least
`min_df` training prompts keep a weight (and their idf); the others count in the length with
`default_idf`, as a word never seen in training would.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from costmesh.errors import ConfigError

from .ngrams import word_ngrams


def bucket_counts(text: str, bits: int) -> dict[int, int]:
    """How often each hashed unigram/bigram bucket occurs in `text`."""
    mask = (1 << bits) - 1
    counts: dict[int, int] = {}
    for token in word_ngrams(text):
        j = zlib.crc32(token.encode("utf-8")) & mask
        counts[j] = counts.get(j, 0) + 1
    return counts


@dataclass
class TextModel:
    bits: int
    buckets: np.ndarray  # sorted uint32 bucket ids that carry a weight
    idf: np.ndarray  # idf of those buckets
    weights: np.ndarray  # ridge weight of those buckets
    bias: float
    default_idf: float  # idf of any other bucket

    def __post_init__(self) -> None:
        self.buckets = np.asarray(self.buckets, dtype=np.uint32).reshape(-1)
        self.idf = np.asarray(self.idf, dtype=np.float32).reshape(-1)
        self.weights = np.asarray(self.weights, dtype=np.float32).reshape(-1)
        if not (self.buckets.shape == self.idf.shape == self.weights.shape):
            raise ConfigError("router artifact: text model buckets, idf and weights differ in length")
        if len(self.buckets) > 1 and np.any(np.diff(self.buckets.astype(np.int64)) <= 0):
            raise ConfigError("router artifact: text model buckets are not sorted and unique")
        if not 8 <= self.bits <= 24:
            raise ConfigError(f"router artifact: text model bits {self.bits} out of range")

    def _row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `buckets` of the weighted buckets, their unit-length values)."""
        counts = bucket_counts(text, self.bits)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ids = np.fromiter(counts.keys(), dtype=np.uint32, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        if len(self.buckets):
            pos = np.minimum(np.searchsorted(self.buckets, ids), len(self.buckets) - 1)
            known = self.buckets[pos] == ids
            idf = np.where(known, self.idf[pos], self.default_idf)
        else:
            pos, known = np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
            idf = np.full(len(ids), self.default_idf)
        values = tf * idf
        norm = math.sqrt(float(values @ values)) or 1.0
        return pos[known], (values[known] / norm).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)
        for i, text in enumerate(texts):
            pos, values = self._row(text)
            out[i] = float(values @ self.weights[pos]) + self.bias
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.buckets": self.buckets, f"{prefix}.idf": self.idf.astype(np.float16),
                f"{prefix}.weights": self.weights}

    def meta(self) -> dict:
        return {"bits": self.bits, "bias": self.bias, "default_idf": self.default_idf}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, meta: dict) -> "TextModel":
        try:
            return cls(int(meta["bits"]), arrays[f"{prefix}.buckets"], arrays[f"{prefix}.idf"],
                       arrays[f"{prefix}.weights"], float(meta["bias"]), float(meta["default_idf"]))
        except KeyError as exc:
            raise ConfigError(f"router artifact: text model lacks {exc}") from None


def fit_text_model(texts: Sequence[str], target: np.ndarray, *, bits: int = 18, alpha: float = 3.0,
                   min_df: int = 2) -> TextModel:
    """Ridge regression of `target` on the hashed TF-IDF rows of `texts` (needs scikit-learn)."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import Ridge

    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        for j, c in bucket_counts(text, bits).items():
            rows.append(i)
            cols.append(j)
            vals.append(1.0 + math.log(c))
    n = len(texts)
    counts = csr_matrix((vals, (rows, cols)), shape=(n, 1 << bits), dtype=np.float64)
    df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=1 << bits)
    idf_all = np.log((1.0 + n) / (1.0 + df)) + 1.0
    default_idf = float(np.log(1.0 + n) + 1.0)
    kept = np.nonzero(df >= min_df)[0]
    # The same transform as `TextModel._row`: dropped buckets count in the length with default_idf.
    idf_used = np.full(1 << bits, default_idf)
    idf_used[kept] = idf_all[kept].astype(np.float16).astype(np.float64)  # as stored
    weighted = counts.multiply(idf_used.reshape(1, -1)).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    weighted = csr_matrix(weighted.multiply(1.0 / norms.reshape(-1, 1)))[:, kept]
    model = Ridge(alpha=alpha, solver="sparse_cg").fit(weighted, np.asarray(target, dtype=np.float64))
    return TextModel(bits, kept.astype(np.uint32), idf_used[kept], model.coef_, float(model.intercept_), default_idf)
