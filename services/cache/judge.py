"""The cache's judge of shadow checks: do the served answer and the fresh one say the same thing?

The project's cross-encoder (the verifier's, already loaded: the packaged MiniLM with its LoRA
adapter) reads the two answers as a pair, as it reads two questions when it verifies a hit;
P(same) = sigmoid(its logit), "same" at `threshold` (COSTMESH_CACHE_SHADOW_JUDGE_THRESHOLD,
default 0.5). Answers equal once whitespace and case are folded are the same without a model.
With a verifier that has no cross-encoder (rules, cosine), the judge is the embedder's cosine
of the two answers, "same" at 0.9.

Its limits: the cross-encoder was trained on question pairs, not answers, and reads at most 96
tokens of the pair, so two long answers that agree in their openings and part ways later look
the same to it. An LLM judge (the gateway's COSTMESH_GATEWAY_SHADOW_JUDGE=llm) reads more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

COSINE_SAME = 0.9


@dataclass(frozen=True)
class Judgement:
    same: bool
    score: float  # P(same answer) in [0, 1]
    judge: str    # "identical", "cross-encoder" or "cosine"
    tokens: int   # what the judge read, for its cost


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


class AnswerJudge:
    def __init__(self, verifier: Any, embedder: Any, threshold: float = 0.5,
                 count_tokens: Callable[[str], int] = lambda text: len(text.split())):
        self._verifier = verifier
        self._embedder = embedder
        self.threshold = threshold
        self._count_tokens = count_tokens

    @property
    def name(self) -> str:
        return "cross-encoder" if getattr(self._verifier, "cross", None) is not None else "cosine"

    async def judge(self, served: str, fresh: str) -> Judgement:
        tokens = self._count_tokens(served) + self._count_tokens(fresh)
        if _folded(served) == _folded(fresh):
            return Judgement(True, 1.0, "identical", 0)
        cross = getattr(self._verifier, "cross", None)
        if cross is not None:
            [logit] = await cross.submit([(served, fresh)])
            score = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, float(logit)))))
            return Judgement(score >= self.threshold, score, "cross-encoder", tokens)
        vectors = await self._embedder.embed([served, fresh])
        served_vector, fresh_vector = (np.asarray(v, dtype=np.float64) for v in vectors)
        norm = float(np.linalg.norm(served_vector) * np.linalg.norm(fresh_vector)) or 1.0
        score = max(0.0, float(served_vector @ fresh_vector) / norm)
        return Judgement(score >= COSINE_SAME, score, "cosine", tokens)
