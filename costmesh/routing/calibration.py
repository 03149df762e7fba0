"""The operating point: from a quality target (a share of all-strong quality) or a premium-call
budget to a score threshold, chosen on held-out rows, and what it is expected to give."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from costmesh.errors import InvalidRequest

from .metrics import curve


@dataclass(frozen=True)
class OperatingPoint:
    """Exactly one of `quality_target` (e.g. 0.95 of all-strong quality) or `premium_budget`
    (the largest share of calls that may go to the strong model). A quality target is met with
    `confidence` (0: on the calibration rows only, which undershoots half the time on new rows)."""

    quality_target: float | None = 0.95
    premium_budget: float | None = None
    confidence: float = 0.9

    def __post_init__(self) -> None:
        if (self.quality_target is None) == (self.premium_budget is None):
            raise InvalidRequest("operating point: give exactly one of quality_target or premium_budget")
        for name in ("quality_target", "premium_budget"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"{name}: must be in [0, 1], got {value}")
        if not 0.0 <= self.confidence < 1.0:
            raise InvalidRequest(f"confidence: must be in [0, 1), got {self.confidence}")

    def describe(self) -> str:
        if self.quality_target is not None:
            sure = f" with {self.confidence:.0%} confidence" if self.confidence > 0 else ""
            return f"{self.quality_target:.0%} of all-strong quality{sure}"
        return f"at most {self.premium_budget:.0%} premium calls"


def threshold_for(
    point: OperatingPoint, scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]
) -> float:
    """The score threshold (prompts scoring >= it go to the strong model) meeting `point` on these rows."""
    x = np.asarray(scores, dtype=np.float64)
    ordered = np.sort(x)[::-1]
    n = len(ordered)
    if point.quality_target is not None:
        k = int(round(curve(x, weak, strong).premium_share_at(point.quality_target) * n))
    else:
        k = int(np.floor(point.premium_budget * n + 1e-9))
    if k <= 0:
        return float(np.nextafter(ordered[0], np.inf))  # nothing goes to the strong model
    if k >= n:
        return float(ordered[-1])
    # Scores >= the k-th highest; when it ties with the next one, raise it just above (budget kept).
    cut = ordered[k - 1]
    if point.premium_budget is not None and ordered[k] == cut:
        return float(np.nextafter(cut, np.inf))
    return float(cut)


def calibrated_threshold(
    point: OperatingPoint,
    scores: Sequence[float],
    weak: Sequence[float],
    strong: Sequence[float],
    *,
    resamples: int = 200,
    seed: int = 0,
) -> float:
    """`threshold_for`, with a safety margin for a quality target: the threshold met in `confidence`
    of bootstrap resamples of the calibration rows (the (1 - confidence) quantile of their
    thresholds; a lower threshold sends more prompts to the strong model)."""
    if point.quality_target is None or point.confidence <= 0:
        return threshold_for(point, scores, weak, strong)
    x = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), size=(resamples, len(x)))
    thresholds = np.array([threshold_for(point, x[i], w[i], s[i]) for i in picks])
    return float(np.quantile(thresholds, 1.0 - point.confidence, method="lower"))


@dataclass(frozen=True)
class Expected:
    """What a threshold gave on rows it was not chosen on."""

    rows: int
    premium_share: float
    quality: float
    quality_fraction: float  # of all-strong quality

    def as_dict(self) -> dict:
        return asdict(self)


def expected_at(
    threshold: float, scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]
) -> Expected:
    x = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    strong_call = x >= threshold
    quality = float(np.where(strong_call, s, w).mean())
    return Expected(
        rows=len(x),
        premium_share=float(strong_call.mean()),
        quality=quality,
        quality_fraction=quality / float(s.mean()) if s.mean() > 0 else 1.0,
    )
