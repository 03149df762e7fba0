"""The prompt features the learned router reads: the MiniLM embedding plus a few cheap
text statistics that the embedding does not carry well (length, numbers, operators)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_OPERATOR = re.compile(r"\d\s*[-+*/×÷^=]\s*\d")
_CHOICE = re.compile(r"^[A-E][.)]\s", re.MULTILINE)

TEXT_FEATURE_NAMES = (
    "log_chars",
    "log_words",
    "numbers",
    "operators",
    "choices",
    "question_marks",
    "lines",
    "digit_share",
)


def text_features(prompt: str) -> list[float]:
    """A few scale-free statistics of the prompt (each roughly in [0, 3])."""
    chars = len(prompt)
    digits = sum(ch.isdigit() for ch in prompt)
    return [
        math.log1p(chars) / 4.0,
        math.log1p(len(prompt.split())) / 3.0,
        math.log1p(len(_NUMBER.findall(prompt))) / 2.0,
        math.log1p(len(_OPERATOR.findall(prompt))) / 2.0,
        len(_CHOICE.findall(prompt)) / 4.0,
        math.log1p(prompt.count("?")),
        math.log1p(prompt.count("\n")) / 2.0,
        digits / max(chars, 1) * 10.0,
    ]


def feature_matrix(prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """Rows of [embedding | text features], float32."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(prompts):
        raise ValueError(f"need one embedding per prompt: {embeddings.shape} for {len(prompts)} prompts")
    extra = np.array([text_features(p) for p in prompts], dtype=np.float32).reshape(len(prompts), -1)
    return np.hstack([embeddings, extra])
