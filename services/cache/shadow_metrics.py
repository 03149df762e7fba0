"""The live false-hit estimates as Prometheus gauges (issue 22), on the cache's metrics endpoint.

  costmesh_cache_shadow_false_hit_rate{tenant}         false hits / verdicts at the tenant's current threshold
  costmesh_cache_shadow_false_hit_upper_bound{tenant}  its one-sided 95% Wilson upper bound
  costmesh_cache_shadow_false_hit_lower_bound{tenant}  its one-sided 95% Wilson lower bound
  costmesh_cache_shadow_false_hit_raise_bound{tenant}  the one of the two the threshold rises on
                                                       (COSTMESH_CACHE_SHADOW_RAISE_WHEN)
  costmesh_cache_shadow_verdicts{tenant}               verdicts at the current threshold
  costmesh_cache_shadow_threshold{tenant}              the verifier threshold the tenant's lookups use
  costmesh_cache_shadow_max_false_hit_rate             the bound the estimate is kept under
  costmesh_cache_shadow_min_verdicts                   verdicts needed before the threshold moves

Read from Redis (`ShadowLedger.estimates`), so every cache replica reports the same figures:
aggregate with max(), not sum() (the alert `CostmeshCacheLiveFalseHitsAboveBound` does). The tenant
label is bounded (`BoundedLabel`, COSTMESH_METRICS_MAX_TENANTS, default 100): the tenants past the
limit share the label `other`, which reports the worst of them (the highest bound the threshold rises on). Tenants
appear once they have a verdict. One read of Redis serves a scrape (kept `max_age_s`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.metrics import Meter

from costmesh.observability.scrape_reads import TenantGauges

from .shadow import LiveEstimate, ShadowSettings

DEFAULT_MAX_TENANTS = 100


class ShadowMetrics(TenantGauges[LiveEstimate, ShadowSettings]):
    """`read`: every tenant's estimate, or None when they cannot be read now (the series are then
    left out of that scrape)."""

    def __init__(self, meter: Meter, read: Callable[[], list[LiveEstimate] | None], settings: ShadowSettings, *,
                 max_tenants: int = DEFAULT_MAX_TENANTS, max_age_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(read, settings, _raise_bound_above,
                         max_tenants=max_tenants, max_age_s=max_age_s, clock=clock)
        per_tenant = (
            ("false_hit_rate", "1", "the tenant's false-hit rate on shadow-checked semantic hits, at its threshold",
             lambda e: e.false_hit_rate),
            ("false_hit_upper_bound", "1", "the one-sided 95% Wilson upper bound of that rate",
             lambda e: e.upper_bound),
            ("false_hit_lower_bound", "1", "the one-sided 95% Wilson lower bound of that rate",
             lambda e: e.lower_bound),
            ("false_hit_raise_bound", "1", "the bound the tenant's threshold rises on while it is over the "
             "maximum: the upper one, or the lower one (COSTMESH_CACHE_SHADOW_RAISE_WHEN=lower)",
             lambda e: e.raise_bound),
            ("verdicts", "{verdict}", "shadow verdicts at the tenant's current threshold", lambda e: e.verdicts),
            ("threshold", "1", "the verifier threshold the tenant's lookups use", lambda e: e.threshold),
        )
        for name, unit, description, value in per_tenant:
            meter.create_observable_gauge(f"costmesh.cache.shadow.{name}", [self._per_tenant(value)], unit=unit,
                                          description=description)
        meter.create_observable_gauge(
            "costmesh.cache.shadow.max_false_hit_rate", [self._setting(lambda s: s.max_false_hit_rate)], unit="1",
            description="the live false-hit rate the threshold keeps the bound it rises on under")
        meter.create_observable_gauge(
            "costmesh.cache.shadow.min_verdicts", [self._setting(lambda s: s.min_verdicts)], unit="{verdict}",
            description="verdicts at one threshold before it moves")


def _raise_bound_above(e: LiveEstimate, known: LiveEstimate) -> bool:
    """Whether `e` is worse than `known`: the shared label `other` reports its highest bound."""
    return e.raise_bound > known.raise_bound
