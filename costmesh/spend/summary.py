"""A period of cost records summed: the seed's "savings by layer" figures and the series the
charts draw, for `costmesh report` (its table, page and charts) and the gateway's dashboard API
alike. Pure functions over `CostRecord`s; how they are shown lives with each surface.

Shadow-check lines (kind "shadow": the background calls that check semantic cache hits, issue
22) are no requests: their cost is in the cost and the cache layer's saving, shown as its own
row, and their verdicts give the period's live false-hit rate with its one-sided 95% Wilson
upper bound, overall and per tenant. The router's checks (check "routing": a cheap answer
against the premium model's) are a cost of the routing layer, their own row too, and their
verdicts give the share of checked cheap answers as good as the premium model's, with its
one-sided 95% Wilson lower bound."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from costmesh.cost_records import LAYERS, CostRecord
from costmesh.intervals import false_hit_bound, quality_bound

BUCKET_CHOICES_S = (1, 5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)


@dataclass
class ShadowTally:
    """Shadow checks of one tenant (or all): how many, what they cost, their verdicts."""

    checks: int = 0
    cost_usd: float = 0.0
    judge_usd: float = 0.0
    same: int = 0
    different: int = 0

    @property
    def judged(self) -> int:
        return self.same + self.different

    @property
    def false_hit_rate(self) -> float:
        return false_hit_bound(self.different, self.judged)[0]

    @property
    def upper_bound(self) -> float:
        """One-sided 95% Wilson upper bound (1 with no verdicts)."""
        return false_hit_bound(self.different, self.judged)[1]

    def add(self, record: CostRecord) -> None:
        self.checks += 1
        self.cost_usd += record.cost_usd
        self.judge_usd += record.judge_usd
        self.same += record.verdict == "same"
        self.different += record.verdict == "different"


@dataclass
class RoutingTally:
    """The router's shadow checks of one tenant (or all): how many, what they cost, their verdicts."""

    checks: int = 0
    cost_usd: float = 0.0
    judge_usd: float = 0.0
    as_good: int = 0
    worse: int = 0

    @property
    def judged(self) -> int:
        return self.as_good + self.worse

    @property
    def quality_retained(self) -> float:
        """The share of checked cheap answers judged as good as the premium model's."""
        return quality_bound(self.as_good, self.judged)[0]

    @property
    def lower_bound(self) -> float:
        """One-sided 95% Wilson lower bound (0 with no verdicts)."""
        return quality_bound(self.as_good, self.judged)[1]

    def add(self, record: CostRecord) -> None:
        self.checks += 1
        self.cost_usd += record.cost_usd
        self.judge_usd += record.judge_usd
        self.as_good += record.verdict == "as_good"
        self.worse += record.verdict == "worse"


@dataclass
class Bucket:
    start: float
    requests: int = 0
    answered: int = 0
    hits: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0

    @property
    def cost_per_request(self) -> float:
        return self.cost_usd / self.answered if self.answered else 0.0

    @property
    def baseline_per_request(self) -> float:
        return self.baseline_usd / self.answered if self.answered else 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.answered if self.answered else 0.0


@dataclass
class Summary:
    since: float
    until: float
    requests: int = 0
    answered: int = 0
    failed: int = 0
    errors: Counter = field(default_factory=Counter)
    cache: Counter = field(default_factory=Counter)
    tiers: Counter = field(default_factory=Counter)  # served tier of answered misses, plus "cached"
    upgraded: int = 0
    similarity_sum: float = 0.0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    savings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0.0))
    users: set[tuple[str, str]] = field(default_factory=set)  # (day, tenant)
    buckets: list[Bucket] = field(default_factory=list)
    bucket_s: int = 3600
    shadow: ShadowTally = field(default_factory=ShadowTally)
    shadow_by_tenant: dict[str, ShadowTally] = field(default_factory=dict)
    routing_checks: RoutingTally = field(default_factory=RoutingTally)
    routing_checks_by_tenant: dict[str, RoutingTally] = field(default_factory=dict)

    @property
    def shadow_checks(self) -> int:
        return self.shadow.checks

    @property
    def shadow_cost_usd(self) -> float:
        return self.shadow.cost_usd

    @property
    def hits(self) -> int:
        return self.cache["exact_hit"] + self.cache["semantic_hit"]

    @property
    def hit_rate(self) -> float:
        return self.hits / self.answered if self.answered else 0.0

    @property
    def avg_hit_similarity(self) -> float:
        return self.similarity_sum / self.hits if self.hits else 0.0

    @property
    def saving_usd(self) -> float:
        return self.baseline_usd - self.cost_usd

    @property
    def saving_ratio(self) -> float:
        return self.saving_usd / self.baseline_usd if self.baseline_usd else 0.0

    @property
    def cost_per_request(self) -> float:
        return self.cost_usd / self.answered if self.answered else 0.0

    @property
    def daily_active_users(self) -> float:
        """Mean over the days that had traffic of the distinct tenants seen that day."""
        days = {day for day, _ in self.users}
        return len(self.users) / len(days) if days else 0.0

    @property
    def cost_per_daily_active_user(self) -> float:
        """Mean daily cost / mean daily active users."""
        days = {day for day, _ in self.users}
        if not days:
            return 0.0
        return (self.cost_usd / len(days)) / self.daily_active_users

    @property
    def upgrade_rate(self) -> float:
        routed = sum(v for k, v in self.tiers.items() if k != "cached")
        return self.upgraded / routed if routed else 0.0


def bucket_size(since: float, until: float, target: int = 30) -> int:
    span = max(until - since, 1.0)
    for size in BUCKET_CHOICES_S:
        if span / size <= target:
            return size
    return BUCKET_CHOICES_S[-1]


def summarize(records: Iterable[CostRecord], since: float, until: float) -> Summary:
    """Sum the records with since <= ts < until. The time series covers the part of the
    period that has records, in about 30 buckets of a round size."""
    summary = Summary(since, until)
    points: list[tuple[float, bool, bool, float, float, bool]] = []  # ts, answered, cached, cost, baseline, request
    for record in records:
        if not since <= record.ts < until:
            continue
        if record.routing_check:  # a cost of the routing layer, not a request
            summary.routing_checks.add(record)
            summary.routing_checks_by_tenant.setdefault(record.tenant_id, RoutingTally()).add(record)
        elif record.shadow:  # a cost of the cache layer, not a request
            summary.shadow.add(record)
            summary.shadow_by_tenant.setdefault(record.tenant_id, ShadowTally()).add(record)
        if record.shadow:
            summary.cost_usd += record.cost_usd
            for layer in LAYERS:
                summary.savings[layer] += record.savings.get(layer, 0.0)
            points.append((record.ts, False, False, record.cost_usd, 0.0, False))
            continue
        summary.requests += 1
        summary.users.add((datetime.fromtimestamp(record.ts, UTC).strftime("%Y-%m-%d"), record.tenant_id))
        points.append((record.ts, record.answered, record.cached, record.cost_usd, record.baseline_usd, True))
        if not record.answered:
            summary.failed += 1
            summary.errors[record.outcome] += 1
            summary.cost_usd += record.cost_usd
            continue
        summary.answered += 1
        summary.cache[record.cache] += 1
        if record.cached:
            summary.tiers["cached"] += 1
            summary.similarity_sum += record.similarity
        elif record.tier:
            summary.tiers[record.tier] += 1
            started = record.start_tier or record.classified_tier  # older records: no start_tier
            if started and _tier_rank(record.tier) > _tier_rank(started):  # the cascade moved it up
                summary.upgraded += 1
        summary.cost_usd += record.cost_usd
        summary.baseline_usd += record.baseline_usd
        for layer in LAYERS:
            summary.savings[layer] += record.savings.get(layer, 0.0)
    _fill_buckets(summary, points)
    return summary


def _fill_buckets(summary: Summary, points: list[tuple[float, bool, bool, float, float, bool]]) -> None:
    if not points:
        summary.bucket_s = bucket_size(summary.since, summary.until)
        return
    low, high = min(p[0] for p in points), max(p[0] for p in points)
    summary.bucket_s = bucket_size(low, high + 1)
    first = math.floor(low / summary.bucket_s) * summary.bucket_s
    count = int((high - first) // summary.bucket_s) + 1
    summary.buckets = [Bucket(first + i * summary.bucket_s) for i in range(count)]
    for ts, answered, cached, cost, baseline, request in points:
        bucket = summary.buckets[int((ts - first) // summary.bucket_s)]
        bucket.requests += request
        bucket.cost_usd += cost
        if answered:
            bucket.answered += 1
            bucket.hits += cached
            bucket.baseline_usd += baseline


_TIER_ORDER = ("trivial", "simple", "moderate", "complex")


def _tier_rank(tier: str) -> int:
    return _TIER_ORDER.index(tier) if tier in _TIER_ORDER else -1
