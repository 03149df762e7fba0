"""What the router counts: requests, upgrades (by reason), the tier that served, attempts by
outcome, the quality-score distribution, cost. One object, passed in; with a `meter` the same
figures also go to OpenTelemetry instruments (the service's Prometheus endpoint):
`costmesh.router.requests{result}`, `costmesh.router.served{tier}`,
`costmesh.router.upgrades{reason}`, `costmesh.router.attempts{outcome}` and the histogram
`costmesh.quality.score{tier}` (Prometheus `costmesh_quality_score`, what the quality alert reads).
These are the router's only instruments: the span metrics (`costmesh.observability.span_metrics`)
count no router facts, so each fact has one instrument and one Prometheus name."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from costmesh.catalog import Tier
from costmesh.observability.metrics import SCORE_BUCKETS

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
    meter: Any = field(default=None, repr=False)  # an OpenTelemetry Meter, or None

    def __post_init__(self) -> None:
        self._otel = None
        if self.meter is not None:
            m = self.meter
            self._otel = {
                "requests": m.create_counter("costmesh.router.requests", unit="{request}",
                                             description="requests routed, by result (served, failed)"),
                "served": m.create_counter("costmesh.router.served", unit="{request}",
                                           description="answers served, by the tier that served them"),
                "upgrades": m.create_counter("costmesh.router.upgrades", unit="{upgrade}",
                                             description="cascade moves up a tier, by reason (gate, error)"),
                "attempts": m.create_counter("costmesh.router.attempts", unit="{attempt}",
                                             description="model calls, by outcome"),
                "quality": m.create_histogram("costmesh.quality.score", unit="1",
                                              description="quality-gate score of the answer the router served",
                                              explicit_bucket_boundaries_advisory=SCORE_BUCKETS),
            }

    def _emit(self, result: RouteResult | None, attempts: list, gate_upgrades: int = 0,
              error_upgrades: int = 0) -> None:
        if self._otel is None:
            return
        o = self._otel
        o["requests"].add(1, {"result": "served" if result is not None else "failed"})
        for attempt in attempts:
            o["attempts"].add(1, {"outcome": Outcome(attempt.outcome).name.lower()})
        if result is None:
            return
        tier = Tier(result.tier).name.lower()
        o["served"].add(1, {"tier": tier})
        # 0 or more per answer, so both series exist from the first answer on.
        o["upgrades"].add(gate_upgrades, {"reason": "gate"})
        o["upgrades"].add(error_upgrades, {"reason": "error"})
        o["quality"].record(result.quality_score, {"tier": tier})

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
        self._emit(result, result.attempts, gate_upgrades, error_upgrades)

    def record_failure(self, attempts: list) -> None:
        self.requests += 1
        self.failures += 1
        self.attempts_by_outcome.update(a.outcome for a in attempts)
        self._emit(None, attempts)

    @property
    def upgrade_rate(self) -> float:
        """Share of answered requests that moved up at least one tier (gate or error)."""
        served = self.requests - self.failures
        return self.upgraded_requests / served if served else 0.0

    @property
    def mean_quality(self) -> float:
        served = self.requests - self.failures
        return self.quality_sum / served if served else 0.0
