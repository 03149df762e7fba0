"""Counters the router keeps for a later metrics exporter. One object, passed in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from costmesh.catalog import Tier

from .records import Outcome, RouteResult

QUALITY_BUCKETS = 10  # quality scores counted in tenths


@dataclass
class RouterStats:
    requests: int = 0
    failures: int = 0
    upgraded_requests: int = 0  # answered requests that moved up a tier at least once
    upgrades: Counter[str] = field(default_factory=Counter)  # by reason: "gate", "error"
    served_by_tier: Counter[Tier] = field(default_factory=Counter)
    attempts_by_outcome: Counter[Outcome] = field(default_factory=Counter)
    quality_histogram: list[int] = field(default_factory=lambda: [0] * QUALITY_BUCKETS)
    quality_sum: float = 0.0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0

    def record(self, result: RouteResult, gate_upgrades: int, error_upgrades: int) -> None:
        self.requests += 1
        self.upgrades["gate"] += gate_upgrades
        self.upgrades["error"] += error_upgrades
        self.upgraded_requests += int(gate_upgrades + error_upgrades > 0)
        self.served_by_tier[result.tier] += 1
        self.attempts_by_outcome.update(a.outcome for a in result.attempts)
        bucket = min(int(result.quality_score * QUALITY_BUCKETS), QUALITY_BUCKETS - 1)
        self.quality_histogram[bucket] += 1
        self.quality_sum += result.quality_score
        self.cost_usd += result.cost.total_usd
        self.baseline_cost_usd += result.baseline_cost_usd

    def record_failure(self, attempts: list) -> None:
        self.requests += 1
        self.failures += 1
        self.attempts_by_outcome.update(a.outcome for a in attempts)

    @property
    def upgrade_rate(self) -> float:
        """Share of answered requests that moved up at least one tier (gate or error)."""
        served = self.requests - self.failures
        return self.upgraded_requests / served if served else 0.0

    @property
    def mean_quality(self) -> float:
        served = self.requests - self.failures
        return self.quality_sum / served if served else 0.0
