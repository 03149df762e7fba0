"""The tenants' live routing quality as Prometheus gauges (issue 22), on the gateway's metrics endpoint.

  costmesh_routing_shadow_quality_retained{tenant}          share of all-premium quality the routed answers keep
  costmesh_routing_shadow_quality_lower_bound{tenant}       its one-sided 95% lower bound
  costmesh_routing_shadow_verdicts{tenant}                  verdicts at the tenant's current operating point
  costmesh_routing_shadow_threshold_offset{tenant}          the tenant's routing threshold offset (<= 0)
  costmesh_routing_shadow_tier_quality_retained{tenant,tier}    share of a tier's checked answers as good as premium
  costmesh_routing_shadow_tier_quality_lower_bound{tenant,tier} its one-sided 95% Wilson lower bound
  costmesh_routing_shadow_quality_target                    the quality the lower bound is kept over
  costmesh_routing_shadow_min_verdicts                      verdicts needed before the threshold moves

Read from Redis (`RoutingLedger.estimates`), so every gateway replica reports the same figures:
aggregate with min() or max(), not sum() (the alert `CostmeshRoutingLiveQualityBelowTarget` does).
The tenant label is bounded (`BoundedLabel`, COSTMESH_METRICS_MAX_TENANTS, default 100): the tenants
past the limit share the label `other`, which reports the worst of them (the lowest lower bound).
Tenants appear once they have a verdict. One read of Redis serves a scrape (kept `max_age_s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from costmesh.gateway.routing_quality import RoutingEstimate, RoutingLedger, RoutingQualitySettings
from costmesh.gateway.settings import GatewayConfig
from costmesh.observability.scrape_reads import TenantGauges, read_on_loop

DEFAULT_MAX_TENANTS = 100


class RoutingQualityGauges(TenantGauges[RoutingEstimate, RoutingQualitySettings]):
    """`read`: every tenant's estimate, or None when they cannot be read now (the series are then left
    out of that scrape)."""

    def __init__(self, meter: Meter, read: Callable[[], list[RoutingEstimate] | None],
                 settings: RoutingQualitySettings, *, max_tenants: int = DEFAULT_MAX_TENANTS,
                 max_age_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(read, settings, _lower_bound_below,
                         max_tenants=max_tenants, max_age_s=max_age_s, clock=clock)
        per_tenant = (
            ("quality_retained", "1", "share of all-premium quality the tenant's routed answers keep (shadow checks)",
             lambda e: e.quality_retained),
            ("quality_lower_bound", "1", "its one-sided 95% lower bound", lambda e: e.lower_bound),
            ("verdicts", "{verdict}", "routing check verdicts at the tenant's current operating point",
             lambda e: e.verdicts),
            ("threshold_offset", "1", "the tenant's routing threshold offset, applied by the classifier",
             lambda e: e.offset),
        )
        for name, unit, description, value in per_tenant:
            meter.create_observable_gauge(f"costmesh.routing.shadow.{name}", [self._per_tenant(value)], unit=unit,
                                          description=description)
        meter.create_observable_gauge(
            "costmesh.routing.shadow.tier_quality_retained", [self._per_tier(lambda c: c.quality_retained)],
            unit="1", description="share of a tier's checked answers judged as good as the premium model's")
        meter.create_observable_gauge(
            "costmesh.routing.shadow.tier_quality_lower_bound", [self._per_tier(lambda c: c.lower_bound)],
            unit="1", description="its one-sided 95% Wilson lower bound")
        meter.create_observable_gauge(
            "costmesh.routing.shadow.quality_target", [self._setting(lambda s: s.target)], unit="1",
            description="the live quality the lower bound is kept over (COSTMESH_ROUTER_QUALITY_TARGET)")
        meter.create_observable_gauge(
            "costmesh.routing.shadow.min_verdicts", [self._setting(lambda s: s.min_verdicts)], unit="{verdict}",
            description="verdicts at one operating point before the routing threshold moves")

    def _per_tier(self, value):
        def observe(_options: CallbackOptions):
            out = []
            for label, estimate in (self._estimates() or {}).items():
                for tier in estimate.cheap_tiers:
                    counts = estimate.tiers.get(tier)
                    if counts is not None and counts.verdicts:
                        out.append(Observation(value(counts), {"tenant": label, "tier": tier}))
            return out
        return observe


def register_quality_gauges(runtime: Any, ledger: RoutingLedger) -> RoutingQualityGauges:
    loop = asyncio.get_running_loop()
    return RoutingQualityGauges(runtime.meter, lambda: read_on_loop(loop, ledger.estimates, 6.0), ledger.settings,
                                max_tenants=GatewayConfig.load(runtime.env).metrics_max_tenants)


def _lower_bound_below(e: RoutingEstimate, known: RoutingEstimate) -> bool:
    """Whether `e` is worse than `known`: the shared label `other` reports its lowest lower bound."""
    return e.lower_bound < known.lower_bound
