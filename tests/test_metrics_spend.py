"""The gateway's spend metrics by tenant and model: label sets stay bounded, keys are never a label."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import ConfigError, UpstreamError
from costmesh.observability.bounded_labels import OTHER, BoundedLabel
from costmesh.observability.gateway_metrics import GatewayMetrics
from costmesh.observability.metrics import build_metrics
from costmesh.server_settings import ServerSettings
from costmesh.tooling.mesh_client import build_request


def answer(model: str, cost: float, baseline: float, cached: bool = False) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        model=model, cached=cached, tier=0 if cached else common.TIER_SIMPLE,
        cache_status=gw.CACHE_STATUS_EXACT_HIT if cached else gw.CACHE_STATUS_MISS,
        cost=common.CostBreakdown(total_usd=cost), baseline_cost_usd=baseline,
    )


@pytest.fixture
def scrape():
    metrics = build_metrics("gateway", ServerSettings(), port=None)
    gateway = GatewayMetrics(metrics.meter(), max_tenants=2, max_models=5)

    def read() -> dict:
        text = generate_latest(metrics.registry).decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    yield gateway, read
    metrics.shutdown()


def by(family, suffix: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for sample in family.samples:
        if sample.name == family.name + suffix:
            out[sample.labels[label]] = out.get(sample.labels[label], 0.0) + sample.value
    return out


def test_cost_and_baseline_by_tenant_and_model_with_the_tenants_bounded(scrape):
    gateway, read = scrape
    gateway.on_answer(build_request("q", tenant="acme"), answer("gpt-5-mini", 0.001, 0.01))
    gateway.on_answer(build_request("q", tenant="acme"), answer("gpt-5-mini", 0.0, 0.01, cached=True))
    gateway.on_answer(build_request("q", tenant="globex"), answer("claude-sonnet-4-5", 0.004, 0.01))
    for tenant in ("t3", "t4", "t5"):  # past max_tenants=2: counted, under "other"
        gateway.on_answer(build_request("q", tenant=tenant), answer("gpt-5-mini", 0.002, 0.01))
    gateway.on_error(build_request("q", tenant="acme"), UpstreamError("500"))
    families = read()
    cost = families["costmesh_cost_usd"]
    assert by(cost, "_total", "tenant") == pytest.approx({"acme": 0.001, "globex": 0.004, OTHER: 0.006})
    assert by(cost, "_total", "model") == pytest.approx(
        {"gpt-5-mini": 0.007, "cache": 0.0, "claude-sonnet-4-5": 0.004})
    assert sum(by(families["costmesh_baseline_cost_usd"], "_total", "tenant").values()) == pytest.approx(0.06)
    requests = families["costmesh_tenant_requests"]
    assert by(requests, "_total", "tenant") == {"acme": 3, "globex": 1, OTHER: 3}
    assert by(requests, "_total", "outcome") == {"answered": 6, "UpstreamError": 1}
    for family in families.values():
        for sample in family.samples:
            assert "key_id" not in sample.labels and "key" not in sample.labels


def test_a_bounded_label_keeps_the_first_values_and_cuts_long_ones():
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "")] == ["a", "b", OTHER, "a", OTHER]
    assert BoundedLabel(3)("x" * 500) == "x" * 64
    assert BoundedLabel(3)("") == "none"


def test_the_label_bounds_come_from_the_env_and_must_be_positive():
    from costmesh.gateway.settings import GatewayConfig

    assert GatewayConfig.load({"COSTMESH_METRICS_MAX_TENANTS": "7"}).metrics_max_tenants == 7
    assert GatewayConfig.load({}).metrics_max_tenants == 100
    with pytest.raises(ConfigError, match="COSTMESH_METRICS_MAX_TENANTS: Input should be greater than or equal to 1"):
        GatewayConfig.load({"COSTMESH_METRICS_MAX_TENANTS": "0"})
