"""Confidence bounds of a rate seen on a few trials (the Wilson score interval).

One formula for every bound costmesh states: the verifier's calibration (a false-hit rate on
held-out pairs), the live false-hit estimate from shadow checks of cache hits (a rate on a
tenant's own traffic) and the live quality the router's cheap answers retain (its lower bound).
One-sided at 95% by default (z = 1.645): "under (over) the bound at 95% confidence".
"""

from __future__ import annotations

import math

Z_ONE_SIDED_95 = 1.645


def wilson_upper(rate: float, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided upper confidence bound of a rate seen on n trials (the rate itself when n = 0)."""
    if n <= 0:
        return rate
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def false_hit_bound(false_hits: int, verdicts: int, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """(rate, upper bound) of `false_hits` in `verdicts`; (0, 1) without verdicts: nothing is known yet."""
    if verdicts <= 0:
        return 0.0, 1.0
    rate = false_hits / verdicts
    return rate, wilson_upper(rate, verdicts, z)


def wilson_lower(rate: float, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided lower confidence bound of a rate seen on n trials (the rate itself when n = 0)."""
    if n <= 0:
        return rate
    return max(0.0, 1.0 - wilson_upper(1.0 - rate, n, z))


def quality_bound(kept: int, verdicts: int, z: float = Z_ONE_SIDED_95) -> tuple[float, float]:
    """(rate, lower bound) of `kept` in `verdicts` (e.g. cheap answers judged as good as the premium
    model's); (1, 0) without verdicts: nothing is known yet."""
    if verdicts <= 0:
        return 1.0, 0.0
    rate = kept / verdicts
    return rate, wilson_lower(rate, verdicts, z)
