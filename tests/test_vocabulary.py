"""One vocabulary on every surface (#21): tiers and cache status by their lower-case names (`simple`,
`miss`), request options by the HTTP API's names (`bypass`, `ttl_seconds`, `tags`; the Python
client's old names still work, with a DeprecationWarning), amounts in whole micro-dollars (never
`0.0016649999999999998` nor `-0.0`), no usage for a cache hit, and `classified_tier` what the
classifier said whatever `min_tier` did. The gRPC/HTTP/Node end of it runs on a mesh in
test_vocabulary_mesh.py; here each piece on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import warnings

import pytest

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.cache_answers import hit_response
from costmesh.client import CacheStatus, Completion, CompletionRequest, Stats, Tier
from costmesh.convert import with_micro_usd, with_rounded_usd
from costmesh.cost_records import CostRecord, record_of_answer
from costmesh.errors import InvalidRequest
from costmesh.gateway.http.costmesh_options import extra_headers, extras
from costmesh.gateway.pipeline import GatewaySettings, Pipeline
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.store_queue import StoreQueue
from costmesh.tooling.report.breakdown import breakdown, format_breakdown
from costmesh.tooling.report.summary import format_table, summarize
from costmesh.vocabulary import parse_tier, start_tier, tier_name, usd, usd_text

NOISY = 0.0016649999999999998  # 0.000333 * 5: what float arithmetic makes of a price


def noisy_response(**fields) -> gw.CompleteResponse:
    cost = common.CostBreakdown(input_usd=0.000333 * 3, output_usd=0.000333 * 2, embedding_usd=2e-9,
                                total_usd=NOISY + 2e-9)
    savings = common.LayerSavings(routing_usd=0.0031 - NOISY, cache_usd=-2e-9)  # the embedding of a miss: -0.000000
    defaults = dict(request_id="r1", text="hi", model="gpt-5-mini", provider="openai", tier=common.TIER_COMPLEX,
                    classified_tier=common.TIER_SIMPLE, cache_status=gw.CACHE_STATUS_MISS, cost=cost,
                    baseline_cost_usd=0.0031, saving_usd=0.0031 - NOISY - 2e-9, savings=savings,
                    usage=common.TokenUsage(input_tokens=12, output_tokens=7))
    return gw.CompleteResponse(**{**defaults, **fields})


def test_amounts_are_whole_micro_dollars_never_minus_zero():
    assert usd(NOISY) == 0.001665 and repr(usd(NOISY)) == "0.001665"
    assert repr(usd(-2e-9)) == "0.0" and usd_text(-2e-9) == "0.000000"
    out = with_rounded_usd(with_micro_usd(noisy_response()))
    assert out.cost.total_usd == 0.001665 and out.cost.embedding_usd == 0.0
    assert repr(out.savings.cache_usd) == "0.0" and out.saving_usd == 0.001435
    assert out.cost.total_usd * 1_000_000 == out.cost.total_micro_usd  # the double is the integer


def test_tier_names_parse_and_print_one_way():
    assert str(Tier.COMPLEX) == "complex" and f"{Tier.SIMPLE}" == "simple" and int(Tier.SIMPLE) == 2
    assert [parse_tier(v) for v in ("complex", "SIMPLE", "TIER_MODERATE", 1, Tier.SIMPLE, None, "")] == [
        Tier.COMPLEX, Tier.SIMPLE, Tier.MODERATE, Tier.TRIVIAL, Tier.SIMPLE, None, None]
    with pytest.raises(InvalidRequest, match="min_tier: 'huge' is not a tier; use one of trivial, simple"):
        parse_tier("huge", "min_tier")
    assert tier_name(common.TIER_SIMPLE) == "simple" and tier_name(0) == ""


def test_the_python_client_takes_tier_names_and_the_http_option_names():
    pb = CompletionRequest(prompt="q", min_tier="complex", max_tier=Tier.COMPLEX, bypass=True, ttl_seconds=60,
                           tags=["docs"]).to_pb()
    assert (pb.routing.min_tier, pb.routing.max_tier) == (common.TIER_COMPLEX, common.TIER_COMPLEX)
    assert (pb.cache.bypass, pb.cache.ttl_seconds, list(pb.cache.tags)) == (True, 60, ["docs"])
    with pytest.raises(InvalidRequest, match="max_tier"):
        CompletionRequest(prompt="q", max_tier="premium").to_pb()


def test_the_old_option_names_still_work_with_a_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request = CompletionRequest(prompt="q", cache_bypass=True, cache_ttl_s=30, cache_tags=["t"])
    assert [(w.category, str(w.message)) for w in caught] == [
        (DeprecationWarning, f"{old!r} is deprecated; use {new!r}")
        for old, new in (("cache_bypass", "bypass"), ("cache_ttl_s", "ttl_seconds"), ("cache_tags", "tags"))]
    assert caught[0].filename == __file__  # pointing at the caller
    assert (request.bypass, request.ttl_seconds, tuple(request.tags)) == (True, 30, ("t",))
    with pytest.warns(DeprecationWarning, match="'cache_ttl_s' is deprecated; use 'ttl_seconds'"):
        assert request.cache_ttl_s == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataclasses.replace(request, bypass=False).bypass is False  # no warning: nothing old asked
    from costmesh.client.request import as_request

    with pytest.warns(DeprecationWarning):
        assert as_request("q", cache_bypass=True).to_pb().cache.bypass
    with pytest.raises(TypeError, match="give 'bypass' only"), pytest.warns(DeprecationWarning):
        CompletionRequest(prompt="q", bypass=True, cache_bypass=True)


def test_the_python_client_reads_names_and_micro_dollars():
    answer = Completion.from_pb(with_micro_usd(noisy_response()))
    assert str(answer.tier) == "complex" and str(answer.classified_tier) == "simple"
    assert answer.cache_status == "miss" and str(answer.cache_status) == "miss"
    assert answer.cache_status is CacheStatus.MISS
    assert repr(answer.cost.total_usd) == "0.001665" and repr(answer.savings.cache_usd) == "0.0"
    assert answer.saving_usd == 0.001435 and answer.savings.total_usd == 0.001435
    hit = Completion.from_pb(gw.CompleteResponse(cached=True, cache_status=gw.CACHE_STATUS_EXACT_HIT,
                                                 usage=common.TokenUsage(input_tokens=40, output_tokens=12)))
    assert hit.usage.input_tokens == 0 and hit.usage.output_tokens == 0 and hit.tier is None
    stats = Stats.from_pb(gw.GetStatsResponse(tier_counts={"TIER_SIMPLE": 2, "complex": 1}, cost_usd=NOISY,
                                              cost_micro_usd=1665))
    assert stats.tier_counts == {"simple": 2, "complex": 1} and repr(stats.cost_usd) == "0.001665"


def test_http_extras_carry_names_and_micro_dollars():
    data = extras(noisy_response())
    text = json.dumps(data)
    assert "0.0016649999999999998" not in text and "-0.0" not in text
    assert data["cost_usd"] == 0.001665 and data["cost"]["total_usd"] == 0.001665
    assert data["tier"] == "complex" and data["classified_tier"] == "simple" and data["cache"]["status"] == "miss"
    headers = extra_headers(noisy_response())
    assert headers["x-costmesh-cost-usd"] == "0.001665" and headers["x-costmesh-tier"] == "complex"
    assert headers["x-costmesh-saving-usd"] == "0.001435" and headers["x-costmesh-cache"] == "miss"


def test_a_cache_hit_reports_no_usage():
    lookup = cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_EXACT, text="cached", model="gpt-5-mini",
                                      usage=common.TokenUsage(input_tokens=40, output_tokens=12),
                                      baseline_cost_usd=0.002, similarity=1.0)
    hit = hit_response("r2", lookup)
    assert not hit.HasField("usage") and hit.usage.input_tokens == 0 and hit.usage.output_tokens == 0
    assert hit.cached and hit.baseline_cost_usd == 0.002


def test_stats_count_tiers_by_name_and_get_stats_reads_micro_dollars():
    stats = GatewayStats()
    request = gw.CompleteRequest(tenant_id="t")
    for _ in range(3):
        stats.on_answer(request, noisy_response())
    out = with_rounded_usd(stats.to_pb("t"))
    assert dict(out.tier_counts) == {"complex": 3}
    assert repr(out.cost_usd) == "0.004995" and out.cost_micro_usd == 4995 and repr(out.savings.cache_usd) == "0.0"


class ScriptedMesh:
    """The classifier says `simple`; the router serves at the tier it is asked to start at."""

    def __init__(self):
        self.executed: list[router_pb2.ExecuteRequest] = []

    async def lookup(self, request, timeout):
        return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_MISS)

    async def store(self, request, timeout):
        return cache_pb2.StoreResponse(stored=True)

    async def classify(self, request, timeout):
        return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3)

    async def execute(self, request, timeout):
        self.executed.append(request)
        return router_pb2.ExecuteResponse(text="answer", model="m", provider="openai", tier=request.tier,
                                          finish_reason="stop", quality_passed=True)


async def test_classified_tier_is_the_classifiers_even_under_min_tier():
    mesh = ScriptedMesh()
    pipeline = Pipeline(mesh, GatewaySettings(), GatewayStats(), stores=StoreQueue(mesh.store))
    request = gw.CompleteRequest(
        tenant_id="t", request_id="r3", routing=gw.RoutingPolicy(min_tier=common.TIER_COMPLEX),
        messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text="hi")])])
    response = await asyncio.wait_for(pipeline.complete(request), 10)
    assert mesh.executed[0].tier == common.TIER_COMPLEX  # the floor still applies to the route
    assert response.tier == common.TIER_COMPLEX and response.classified_tier == common.TIER_SIMPLE
    record = record_of_answer(request, response, 0.0)
    assert (record.tier, record.classified_tier, record.start_tier) == ("complex", "simple", "complex")
    await pipeline.aclose()


def test_a_floor_raised_by_min_tier_is_no_cascade_upgrade():
    floor = gw.RoutingPolicy(min_tier=common.TIER_COMPLEX)
    assert start_tier(floor, common.TIER_SIMPLE) == common.TIER_COMPLEX
    assert start_tier(gw.RoutingPolicy(max_tier=common.TIER_SIMPLE), common.TIER_MODERATE) == common.TIER_SIMPLE
    assert start_tier(floor, 0) == 0  # a pinned model: nothing classified
    records = [
        CostRecord(ts=1.0, request_id="a", tenant_id="t", outcome="answered", cache="miss", tier="complex",
                   classified_tier="simple", start_tier="complex", cost_usd=NOISY, baseline_usd=0.0031,
                   savings={"routing": 0.0031 - NOISY, "cache": -2e-9}),
        CostRecord(ts=2.0, request_id="b", tenant_id="t", outcome="answered", cache="miss", tier="moderate",
                   classified_tier="simple", start_tier="simple", cost_usd=NOISY, baseline_usd=0.0031),
    ]
    summary = summarize(records, 0.0, 10.0)
    assert summary.upgraded == 1  # b, moved up by the cascade; a was asked to start at complex
    table = format_table(summary) + format_breakdown(breakdown(records, "tenant", 0.0, 10.0))
    assert "-0.000000" not in table and "0.003330" in table
    assert json.dumps(breakdown(records, "tenant", 0.0, 10.0).to_json()).count("-0.0") == 0
