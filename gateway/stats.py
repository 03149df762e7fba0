"""Running totals the gateway reports through GetStats: each tenant's own, and all tenants'.

GetStats answers the caller's tenant's figures only (`to_pb(tenant)`); the totals of every
tenant (`to_pb()`) are for the gateway's own use (tests, a development gateway with
authentication off). At most `max_tenants` tenants are kept: past that, the one reported least
recently is forgotten (its figures start again from 0).

Money is added up twice: the doubles, and the integer micro-dollars of each answer as it leaves
the gateway (`convert.with_micro_usd`), so the integer totals are exact sums of what callers saw."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.convert import with_micro_usd
from costmesh.gateway.store_queue import StoreCounters
from costmesh.vocabulary import tier_name

_LAYERS = ("cache", "routing", "prompt_caching", "batch", "inference")  # LayerSavings' <layer>_usd
MAX_TENANTS = 10_000


@dataclass
class Totals:
    """One tenant's figures, or every tenant's."""

    requests: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    cache_unavailable: int = 0
    errors: int = 0
    limited: int = 0  # refused: over a limit of the tenant or of its key
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    cost_micro_usd: int = 0
    baseline_cost_micro_usd: int = 0
    tiers: Counter = field(default_factory=Counter)
    savings: common.LayerSavings = field(default_factory=common.LayerSavings)
    cache_lookups_timed_out: int = 0
    cache_lookups_busy: int = 0
    classifier_busy: int = 0
    stores: StoreCounters = field(default_factory=StoreCounters)

    def on_answer(self, response: gw.CompleteResponse, billed: gw.CompleteResponse) -> None:
        self.requests += 1
        if response.cache_status == gw.CACHE_STATUS_EXACT_HIT:
            self.exact_hits += 1
        elif response.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT:
            self.semantic_hits += 1
        elif response.cache_status == gw.CACHE_STATUS_UNAVAILABLE:
            self.cache_unavailable += 1
        if not response.cached:
            self.tiers[tier_name(response.tier) or "unspecified"] += 1  # "simple", as every surface names it
        self.cost_usd += response.cost.total_usd
        self.baseline_cost_usd += response.baseline_cost_usd
        self.cost_micro_usd += billed.cost.total_micro_usd
        self.baseline_cost_micro_usd += billed.baseline_cost_micro_usd
        for layer in _LAYERS:
            for name in (f"{layer}_usd", f"{layer}_micro_usd"):
                setattr(self.savings, name, getattr(self.savings, name) + getattr(billed.savings, name))

    def to_pb(self, pending_stores: int) -> gw.GetStatsResponse:
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
            limited=self.limited,
            cache_lookups_timed_out=self.cache_lookups_timed_out,
            cache_lookups_busy=self.cache_lookups_busy,
            cache_stores_dropped=self.stores.dropped,
            cache_stores_failed=self.stores.failed,
            cache_stores_pending=pending_stores,
            cache_stores=self.stores.stored,
            classifier_busy=self.classifier_busy,
        )


@dataclass
class GatewayStats:
    total: Totals = field(default_factory=Totals)
    tenants: OrderedDict[str, Totals] = field(default_factory=OrderedDict)
    max_tenants: int = MAX_TENANTS
    stores: StoreCounters = field(default_factory=StoreCounters)  # the pipeline's store queue's, all tenants
    pending_stores: Callable[[str | None], int] = lambda tenant=None: 0

    def of(self, tenant: str) -> Totals:
        totals = self.tenants.get(tenant)
        if totals is None:
            totals = self.tenants[tenant] = Totals()
            if len(self.tenants) > self.max_tenants:
                self.tenants.popitem(last=False)
        else:
            self.tenants.move_to_end(tenant)
        return totals

    def count(self, tenant: str, name: str) -> None:
        """One more of counter `name` (e.g. "cache_lookups_busy") for `tenant` and in the total."""
        setattr(self.total, name, getattr(self.total, name) + 1)
        totals = self.of(tenant)
        setattr(totals, name, getattr(totals, name) + 1)

    def store_counters(self, tenant: str) -> StoreCounters:
        return self.of(tenant).stores

    def on_error(self, request: gw.CompleteRequest, error: Exception) -> None:
        self.count(request.tenant_id, "errors")

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        billed = with_micro_usd(gw.CompleteResponse(cost=response.cost, baseline_cost_usd=response.baseline_cost_usd,
                                                    savings=response.savings))  # a copy: the answer as it leaves
        self.total.on_answer(response, billed)
        self.of(request.tenant_id).on_answer(response, billed)

    def to_pb(self, tenant: str | None = None) -> gw.GetStatsResponse:
        """`tenant`'s figures (GetStats); None: every tenant's, with the store queue's counters."""
        if tenant is None:
            self.total.stores = self.stores
            return self.total.to_pb(self.pending_stores(None))
        out = self.of(tenant).to_pb(self.pending_stores(tenant))
        out.tenant_id = tenant
        return out
