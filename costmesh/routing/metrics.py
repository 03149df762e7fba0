"""RouteLLM's router metrics over a book: the quality-vs-premium-share curve, the premium share
needed to reach a share of all-strong quality, and APGR.

A router's scores order the prompts; the top `k` go to the strong model. Prompts with equal
scores are taken as one block in random order, so the curve is the expectation over tie
breaks: inside a block it runs linearly. A random router is the expectation over all orders
(`random_curve`): one block holding every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

QUALITY_TARGET = 0.95  # of all-strong quality


@dataclass(frozen=True)
class Curve:
    """quality[k]: mean quality when the `k` highest-scored prompts go to the strong model (k = 0..n)."""

    quality: np.ndarray
    weak_quality: float
    strong_quality: float

    @property
    def n(self) -> int:
        return len(self.quality) - 1

    def share_for(self, target_quality: float) -> float:
        """Smallest premium share whose quality reaches `target_quality` (1.0 if none does)."""
        reached = np.nonzero(self.quality >= target_quality - 1e-12)[0]
        return float(reached[0]) / self.n if len(reached) else 1.0

    def premium_share_at(self, fraction: float = QUALITY_TARGET) -> float:
        return self.share_for(fraction * self.strong_quality)

    def quality_at(self, share: float) -> float:
        return float(self.quality[int(round(share * self.n))])

    def apgr(self) -> float:
        """Average share of the weak->strong gap recovered, over every premium share 0..1."""
        gap = self.strong_quality - self.weak_quality
        if abs(gap) < 1e-12:
            return 1.0
        return float(np.mean((self.quality - self.weak_quality) / gap))


def _check(weak: Sequence[float], strong: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    if w.shape != s.shape or w.ndim != 1 or len(w) == 0:
        raise ValueError("weak and strong scores must be two non-empty lists of the same length")
    return w, s


def curve(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> Curve:
    """The quality curve of a router that sends the highest `scores` to the strong model."""
    w, s = _check(weak, strong)
    x = np.asarray(scores, dtype=np.float64)
    if x.shape != w.shape:
        raise ValueError("one score per prompt is needed")
    n = len(w)
    order = np.argsort(-x, kind="stable")
    gains = (s - w)[order]
    sorted_scores = x[order]
    # Block boundaries: where the score changes.
    starts = np.concatenate(([0], np.nonzero(np.diff(sorted_scores) != 0)[0] + 1, [n]))
    cumulative = np.zeros(n + 1)
    for a, b in zip(starts[:-1], starts[1:]):
        block = gains[a:b].sum()
        steps = np.arange(1, b - a + 1)
        cumulative[a + 1 : b + 1] = cumulative[a] + block * steps / (b - a)
    return Curve(quality=(w.sum() + cumulative) / n, weak_quality=float(w.mean()), strong_quality=float(s.mean()))


def random_curve(weak: Sequence[float], strong: Sequence[float]) -> Curve:
    """The expected curve of a router that picks the strong model's prompts at random."""
    w, _ = _check(weak, strong)
    return curve(np.zeros(len(w)), weak, strong)


def summary(c: Curve, fraction: float = QUALITY_TARGET) -> dict:
    """The figures `costmesh eval router` reports for one router."""
    return {
        "weak_quality": c.weak_quality,
        "strong_quality": c.strong_quality,
        "premium_share_at_95": c.premium_share_at(fraction),
        "apgr": c.apgr(),
    }
