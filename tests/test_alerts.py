"""The Prometheus alert rules: valid (`promtool check rules`), firing in promtool's rule unit
tests, wired into Prometheus and docker-compose, and written against metric names the
services really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier
from costmesh.domain import Cost, Usage
from costmesh.gateway.routing_quality import RoutingEstimate, RoutingQualitySettings, TierCounts
from costmesh.gateway.routing_quality_metrics import RoutingQualityGauges
from costmesh.observability.gateway_metrics import GatewayMetrics
from costmesh.observability.metrics import build_metrics
from costmesh.server_settings import ServerSettings
from costmesh.services.cache.shadow import LiveEstimate, ShadowSettings
from costmesh.services.cache.shadow_metrics import ShadowMetrics
from costmesh.services.router.records import Attempt, Outcome, RouteResult
from costmesh.services.router.stats import RouterStats
from costmesh.tooling.mesh_client import build_request

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
ALERTS = {"CostmeshCacheHitRateLow", "CostmeshHourlyCostAboveBaseline", "CostmeshQualityP99Low",
          "CostmeshCacheLiveFalseHitsAboveBound", "CostmeshRoutingLiveQualityBelowTarget"}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_are_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    assert alerts == ALERTS


def test_rule_unit_tests_fire_every_alert():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if not case["exp_alerts"]}
    assert fired == ALERTS and quiet == ALERTS  # each alert is shown to fire, and to stay quiet


def test_rule_unit_tests_can_fail(tmp_path):
    """promtool really evaluates them: expecting silence where the alert fires is an error."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            case["exp_alerts"] = []
    shutil.copy(RULES, tmp_path / "alerts.yml")
    (tmp_path / "broken_test.yml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "broken_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    for alert in ALERTS:
        assert alert in result.stdout + result.stderr


def test_prometheus_and_compose_load_the_rules():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


def exported_names() -> set[str]:
    """Metric names the gateway and the router really expose, after one answer each, and the
    cache's live false-hit gauges and the gateway's live routing-quality gauges with one tenant's
    estimate."""
    metrics = build_metrics("gateway", ServerSettings(), port=None)
    gateway = GatewayMetrics(metrics.meter())
    response = gw.CompleteResponse(
        tier=common.TIER_SIMPLE, classified_tier=common.TIER_SIMPLE, cache_status=gw.CACHE_STATUS_MISS,
        cost=common.CostBreakdown(total_usd=0.001), baseline_cost_usd=0.01,
        savings=common.LayerSavings(routing_usd=0.009),
    )
    gateway.on_answer(build_request("q", tenant="t"), response)
    attempt = Attempt("gpt-5-mini", "openai", Tier.SIMPLE, Outcome.OK, quality_score=0.8)
    RouterStats(meter=metrics.meter()).record(RouteResult(
        text="a", model="gpt-5-mini", provider="openai", tier=Tier.SIMPLE, usage=Usage(), cost=Cost(),
        baseline_cost_usd=0.01, list_cost_usd=0.001, attempts=[attempt], quality_score=0.8, quality_passed=True,
        finish_reason="stop"), gate_upgrades=0, error_upgrades=0)
    estimate = LiveEstimate("t", verdicts=120, false_hits=9, total_verdicts=120, max_false_hit_rate=0.05)
    ShadowMetrics(metrics.meter(), lambda: [estimate], ShadowSettings(max_false_hit_rate=0.05))
    routed = RoutingEstimate("t", {"simple": TierCounts(verdicts=120, as_good=100, served=400, total_verdicts=120)},
                             ("trivial", "simple", "moderate"), target=0.95, min_verdicts=100)
    RoutingQualityGauges(metrics.meter(), lambda: [routed], RoutingQualitySettings())
    text = generate_latest(metrics.registry).decode()
    metrics.shutdown()
    return set(re.findall(r"^(costmesh_[a-z0-9_]+)", text, re.M))


def test_rules_use_metrics_the_services_export():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    used = {name for group in groups for rule in group["rules"]
            for name in re.findall(r"\b(costmesh_[a-z0-9_]+)", rule["expr"])}
    assert used >= {"costmesh_requests_total", "costmesh_cost_usd_total", "costmesh_quality_score_bucket"}
    missing = used - exported_names()
    assert not missing, f"rules use metrics nobody exports: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_has_severity_and_summary(name):
    rule = next(rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
                if rule.get("alert") == name)
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
