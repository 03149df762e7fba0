"""Running totals the gateway reports through GetStats.

Money is added up twice: the doubles, and the integer micro-dollars of each answer as it leaves
the gateway (`convert.with_micro_usd`), so the integer totals are exact sums of what callers saw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.convert import with_micro_usd
from costmesh.gateway.store_queue import StoreCounters

_LAYERS = ("cache", "routing", "prompt_caching", "batch", "inference")  # LayerSavings' <layer>_usd


@dataclass
class GatewayStats:
    requests: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    cache_unavailable: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    cost_micro_usd: int = 0
    baseline_cost_micro_usd: int = 0
    tiers: Counter = field(default_factory=Counter)
    savings: common.LayerSavings = field(default_factory=common.LayerSavings)
    cache_lookups_timed_out: int = 0
    cache_lookups_busy: int = 0
    classifier_busy: int = 0
    stores: StoreCounters = field(default_factory=StoreCounters)  # the pipeline's store queue's
    pending_stores: Callable[[], int] = lambda: 0

    def on_error(self, request: gw.CompleteRequest, error: Exception) -> None:
        self.errors += 1

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        self.requests += 1
        if response.cache_status == gw.CACHE_STATUS_EXACT_HIT:
            self.exact_hits += 1
        elif response.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT:
            self.semantic_hits += 1
        elif response.cache_status == gw.CACHE_STATUS_UNAVAILABLE:
            self.cache_unavailable += 1
        if not response.cached:
            self.tiers[common.Tier.Name(response.tier)] += 1
        self.cost_usd += response.cost.total_usd
        self.baseline_cost_usd += response.baseline_cost_usd
        billed = with_micro_usd(gw.CompleteResponse(cost=response.cost, baseline_cost_usd=response.baseline_cost_usd,
                                                    savings=response.savings))  # a copy: the answer as it leaves
        self.cost_micro_usd += billed.cost.total_micro_usd
        self.baseline_cost_micro_usd += billed.baseline_cost_micro_usd
        for layer in _LAYERS:
            for name in (f"{layer}_usd", f"{layer}_micro_usd"):
                setattr(self.savings, name, getattr(self.savings, name) + getattr(billed.savings, name))

    def to_pb(self) -> gw.GetStatsResponse:
        return gw.GetStatsResponse(
            requests=self.requests,
            exact_hits=self.exact_hits,
            semantic_hits=self.semantic_hits,
            cache_unavailable=self.cache_unavailable,
            tier_counts=dict(self.tiers),
            cost_usd=self.cost_usd,
            baseline_cost_usd=self.baseline_cost_usd,
            saving_usd=self.baseline_cost_usd - self.cost_usd,
            cost_micro_usd=self.cost_micro_usd,
            baseline_cost_micro_usd=self.baseline_cost_micro_usd,
            saving_micro_usd=self.baseline_cost_micro_usd - self.cost_micro_usd,
            savings=self.savings,
            errors=self.errors,
            cache_lookups_timed_out=self.cache_lookups_timed_out,
            cache_lookups_busy=self.cache_lookups_busy,
            cache_stores_dropped=self.stores.dropped,
            cache_stores_failed=self.stores.failed,
            cache_stores_pending=self.pending_stores(),
            cache_stores=self.stores.stored,
            classifier_busy=self.classifier_busy,
        )
