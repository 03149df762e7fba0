"""The shadow checks' per-tenant gauges (`TenantGauges`): one series a tenant, the tenants past the
label limit folded onto `other` at their worst, the settings, nothing once closed."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from costmesh.services.cache.shadow import LiveEstimate, ShadowSettings
from costmesh.services.cache.shadow_metrics import ShadowMetrics


def points(reader: InMemoryMetricReader) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}
    return out


def test_one_series_a_tenant_the_rest_folded_onto_other_at_their_worst():
    estimates = [LiveEstimate("acme", verdicts=10, false_hits=1, total_verdicts=10, threshold=0.8),
                 LiveEstimate("globex", verdicts=10, false_hits=2, total_verdicts=10, threshold=0.8),
                 LiveEstimate("initech", verdicts=10, false_hits=6, total_verdicts=10, threshold=0.9),
                 LiveEstimate("silent", total_verdicts=0)]  # no verdict yet: no series
    reads = []

    def read():
        reads.append(1)
        return estimates

    reader = InMemoryMetricReader()
    gauges = ShadowMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), read,
                           ShadowSettings(max_false_hit_rate=0.1, min_verdicts=30), max_tenants=1)
    got = points(reader)
    assert len(reads) == 1  # one read serves every instrument of the scrape
    verdicts = got["costmesh.cache.shadow.verdicts"]
    assert set(verdicts) == {(("tenant", "acme"),), (("tenant", "other"),)}
    thresholds = got["costmesh.cache.shadow.threshold"]
    assert thresholds[(("tenant", "other"),)] == 0.9  # initech: the highest bound of the two past the limit
    assert got["costmesh.cache.shadow.max_false_hit_rate"] == {(): 0.1}
    assert got["costmesh.cache.shadow.min_verdicts"] == {(): 30}

    gauges.close()
    assert not any(points(reader).get(name) for name in ("costmesh.cache.shadow.verdicts",
                                                          "costmesh.cache.shadow.min_verdicts"))


def test_a_failed_read_leaves_the_tenant_series_out():
    reader = InMemoryMetricReader()
    ShadowMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), lambda: None, ShadowSettings())
    got = points(reader)
    assert not got.get("costmesh.cache.shadow.verdicts")
    assert got["costmesh.cache.shadow.min_verdicts"] == {(): 100}
