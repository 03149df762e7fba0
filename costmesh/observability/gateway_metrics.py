"""The seed's business metrics, recorded at the gateway from every answered or failed request.

Prometheus names (what the alert rules and dashboards use):
  costmesh_requests_total{cache, tier, outcome}   cache hit rate, tier distribution, errors
  costmesh_upgraded_requests_total{tier}          answers the cascade served above the tier it started at
                                                  (the classified tier, raised to min_tier, capped at max_tier)
  costmesh_cost_usd_total{tenant, model}, costmesh_baseline_cost_usd_total{tenant, model}
                                                  spend and its baseline by tenant and by model
  costmesh_tenant_requests_total{tenant, model, outcome}
  costmesh_saving_usd_total{layer}
  costmesh_request_cost_usd (histogram)           cost per request
  costmesh_daily_active_users, costmesh_daily_cost_usd, costmesh_daily_cost_per_active_user_usd
  costmesh_saving_ratio                           saving / baseline since this replica started (ROI)
The cache's own figures (entries, evictions, bytes per entry, stores, refusals) are on the cache
service's endpoint (`services/cache/metrics.py`), not read from it here at every scrape.
An active user is a tenant id that sent at least one request that UTC day (per replica: across
replicas use the savings report, which counts them exactly from the cost records).

Tenant and model labels are bounded (`BoundedLabel`): the first `max_tenants` tenants and
`max_models` models a replica sees keep their names, later ones count as `other`
(COSTMESH_METRICS_MAX_TENANTS, COSTMESH_METRICS_MAX_MODELS). A cached answer's model is `cache`
(its cost is the embedding). API keys are never a label: spend per key is in the cost records
(`costmesh report --by key`, the dashboard).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import CostmeshError
from costmesh.observability.bounded_labels import BoundedLabel
from costmesh.observability.metrics import COST_BUCKETS_USD
from costmesh.vocabulary import cache_status_name, start_tier, tier_name

LAYERS = ("cache", "routing", "prompt_caching", "batch", "inference")
DEFAULT_MAX_TENANTS = 100
DEFAULT_MAX_MODELS = 50


def cache_label(status: int) -> str:
    return cache_status_name(status) if status else "none"


def tier_label(response: gw.CompleteResponse) -> str:
    if response.cached:
        return "cached"
    return tier_name(response.tier) or "none"


class GatewayMetrics:
    """An `AnswerObserver` recording OpenTelemetry metrics."""

    def __init__(self, meter: Meter, *, clock: Callable[[], float] = time.time,
                 max_tenants: int = DEFAULT_MAX_TENANTS, max_models: int = DEFAULT_MAX_MODELS):
        self._clock = clock
        self._tenant = BoundedLabel(max_tenants)
        self._model = BoundedLabel(max_models)
        self._lock = threading.Lock()  # observable callbacks run in the scrape thread
        self._day = ""
        self._day_users: set[str] = set()
        self._day_cost = 0.0
        self._cost_total = 0.0
        self._baseline_total = 0.0
        self._requests = meter.create_counter(
            "costmesh.requests", unit="{request}", description="requests, by cache outcome, served tier and outcome"
        )
        self._upgraded = meter.create_counter(
            "costmesh.upgraded_requests", unit="{request}",
            description="answers served by a stronger tier than the classifier chose (cascade upgrades)",
        )
        self._cost = meter.create_counter(
            "costmesh.cost", unit="usd", description="what the answers cost, by tenant and model (bounded)"
        )
        self._baseline = meter.create_counter(
            "costmesh.baseline.cost", unit="usd",
            description="what they would have cost: premium model, no cache; by tenant and model (bounded)",
        )
        self._tenant_requests = meter.create_counter(
            "costmesh.tenant.requests", unit="{request}",
            description="requests by tenant, model (cache for a cached answer) and outcome; both bounded",
        )
        self._saving = meter.create_counter("costmesh.saving", unit="usd", description="baseline - cost, by layer")
        self._request_cost = meter.create_histogram(
            "costmesh.request.cost", unit="usd", description="cost of one request",
            explicit_bucket_boundaries_advisory=COST_BUCKETS_USD,
        )
        meter.create_observable_gauge(
            "costmesh.daily.active_users", [self._observe_users], unit="{user}",
            description="distinct tenants with a request today (UTC), this replica",
        )
        meter.create_observable_gauge(
            "costmesh.daily.cost", [self._observe_day_cost], unit="usd", description="cost today (UTC), this replica"
        )
        meter.create_observable_gauge(
            "costmesh.daily.cost_per_active_user", [self._observe_cost_per_user], unit="usd",
            description="cost today / active users today",
        )
        meter.create_observable_gauge(
            "costmesh.saving.ratio", [self._observe_ratio], unit="1",
            description="saving / baseline since this replica started (ROI of costmesh)",
        )

    # -- AnswerObserver ----------------------------------------------------------------

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        tier = tier_label(response)
        self._requests.add(1, {"cache": cache_label(response.cache_status), "tier": tier, "outcome": "answered"})
        if not response.cached:  # 0 or 1 per routed answer, so the series exists from the first one
            started = start_tier(request.routing, response.classified_tier)  # min_tier raising it is no upgrade
            upgraded = bool(started) and response.tier > started
            self._upgraded.add(int(upgraded), {"tier": tier})
        cost = response.cost.total_usd
        spender = {"tenant": self._tenant(request.tenant_id),
                   "model": "cache" if response.cached else self._model(response.model)}
        self._cost.add(cost, spender)
        self._baseline.add(response.baseline_cost_usd, spender)
        self._tenant_requests.add(1, {**spender, "outcome": "answered"})
        self._request_cost.record(cost, {"cached": str(response.cached).lower()})
        for layer in LAYERS:
            value = getattr(response.savings, f"{layer}_usd")
            if value:
                # A counter only goes up: a layer that cost money (e.g. the embedding of a miss)
                # is counted under its own `_loss` series.
                if value > 0:
                    self._saving.add(value, {"layer": layer})
                else:
                    self._saving.add(-value, {"layer": f"{layer}_loss"})
        self._count_day(request.tenant_id, cost, response.baseline_cost_usd)

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        self._requests.add(1, {"cache": "none", "tier": "none", "outcome": type(error).__name__})
        self._tenant_requests.add(1, {"tenant": self._tenant(request.tenant_id), "model": "none",
                                      "outcome": type(error).__name__})
        self._count_day(request.tenant_id, 0.0, 0.0)

    # -- internals ---------------------------------------------------------------------

    def _count_day(self, tenant: str, cost: float, baseline: float) -> None:
        day = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")
        with self._lock:
            if day != self._day:
                self._day, self._day_users, self._day_cost = day, set(), 0.0
            self._day_users.add(tenant)
            self._day_cost += cost
            self._cost_total += cost
            self._baseline_total += baseline

    def _today(self) -> tuple[int, float]:
        day = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")
        with self._lock:
            if day != self._day:
                return 0, 0.0
            return len(self._day_users), self._day_cost

    def _observe_users(self, _options: CallbackOptions):
        return [Observation(self._today()[0])]

    def _observe_day_cost(self, _options: CallbackOptions):
        return [Observation(self._today()[1])]

    def _observe_cost_per_user(self, _options: CallbackOptions):
        users, cost = self._today()
        return [Observation(cost / users)] if users else []

    def _observe_ratio(self, _options: CallbackOptions):
        with self._lock:
            if self._baseline_total <= 0:
                return []
            return [Observation((self._baseline_total - self._cost_total) / self._baseline_total)]
