"""Shadow checks of the router's cheap answers end to end (issue 22): the whole mesh in process (real
gRPC servers, real Redis, the packaged learned router), the simulator answering from a book of our
own and judging in its judge mode.

Six questions the packaged router scores under its threshold (0.163): they start on the simple tier,
whose (weak-side) models replay the book's weak answers. On three of them the book scores the weak
answer 0 and records a wrong one, so the judge finds it worse than the premium model's. A consenting
tenant's cheap answers are all checked (shadow_rate 1): the live quality and its bound move, and
after the minimum of 6 verdicts the tenant's threshold falls by a step (0.025) under the 0.9 target:
two of the six questions then start on the strong tiers. A tenant that did not consent is never
checked and keeps the calibrated threshold. Every check is billed as its own cost line."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import read_records
from costmesh.gateway.routing_shadow import RoutingChecks
from costmesh.intervals import wilson_lower
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

# question: (weak answer, strong answer, weak score); the packaged router's score of each in brackets
BOOK = {
    "What does HTML stand for?": ("HTML stands for HyperText Markup Language.",) * 2 + (1.0,),  # [0.116]
    "Who wrote Romeo and Juliet?": ("Christopher Marlowe wrote Romeo and Juliet.",
                                    "William Shakespeare wrote Romeo and Juliet.", 0.0),  # [0.147]
    "Suggest a name for a pet goldfish.": ("Bubbles is a classic name for a goldfish.",) * 2 + (1.0,),  # [0.130]
    "What is the boiling point of water at sea level in Celsius?": ("Water boils at 90 degrees Celsius.",
                                                                     "Water boils at 100 degrees Celsius.",
                                                                     0.0),  # [0.125]
    "What is the capital of France?": ("The capital of France is Paris.",) * 2 + (1.0,),  # [0.132]
    "Translate 'good morning' into Spanish.": ("Buenas noches.", "Buenos días.", 0.0),  # [0.150]
}
QUESTIONS = list(BOOK)
MOVED = {"Who wrote Romeo and Juliet?", "Translate 'good morning' into Spanish."}  # over 0.163 - 0.025
CONSENTING, REFUSING = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
STRONG_TIERS = (common.TIER_MODERATE, common.TIER_COMPLEX)


@pytest.fixture(scope="module")
async def simulator(tmp_path_factory):
    book = tmp_path_factory.mktemp("book") / "routing_shadow_test.jsonl.gz"
    with gzip.open(book, "wt") as handle:
        for prompt, (weak, strong, weak_score) in BOOK.items():
            handle.write(json.dumps({"prompt": prompt, "weak_response": weak, "strong_response": strong,
                                     "weak_score": weak_score, "strong_score": 1.0}) + "\n")
    sim = await start_simulator(port=0, books=[str(book)])
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, records_dir):
    env = {
        "COSTMESH_RECORDS_DIR": str(records_dir),
        "COSTMESH_CACHE_INDEX_PREFIX": f"routing-mesh-{uuid.uuid4().hex[:6]}",
        "COSTMESH_ROUTER_SHADOW_PREFIX": f"routing-mesh-{uuid.uuid4().hex[:6]}",
        "COSTMESH_ROUTER_TENANT_POLICIES": json.dumps({CONSENTING: {"shadow_rate": 1.0, "keep_shadow_rows": True}}),
        "COSTMESH_ROUTER_QUALITY_TARGET": "0.9",
        "COSTMESH_ROUTER_SHADOW_MIN_VERDICTS": "6",
        "COSTMESH_ROUTER_SHADOW_THRESHOLD_STEP": "0.025",
        "COSTMESH_ROUTER_SHADOW_JUDGE_MODEL": "gpt-5-nano",
    }
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), env)
    classifier = next(item.servicer for item in mesh.services["classifier"].mounted.servicers
                      if hasattr(item.servicer, "_classifier"))._classifier
    for _ in range(600):  # the cache is bypassed: the classifier embeds the prompts itself
        if classifier._embedder.loaded:
            break
        await asyncio.sleep(0.1)
    assert classifier._embedder.loaded
    yield mesh
    await mesh.stop()


@pytest.fixture(scope="module")
async def client(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
        yield client


def checks(mesh) -> RoutingChecks:
    gateway = next(item.servicer for item in mesh.services["gateway"].mounted.servicers
                   if hasattr(item.servicer, "_pipeline"))
    return gateway._pipeline.routing


async def ask(client, mesh, question: str, tenant: str) -> gw.CompleteResponse:
    response = await client.complete(build_request(question, tenant=tenant, bypass_cache=True))
    await checks(mesh).drain()
    return response


async def test_a_consenting_tenants_cheap_answers_are_checked_and_its_threshold_moves(client, mesh, records_dir):
    routing = checks(mesh)
    first = await ask(client, mesh, QUESTIONS[0], CONSENTING)  # as good
    assert first.tier == common.TIER_SIMPLE and first.text == BOOK[QUESTIONS[0]][0]
    second = await ask(client, mesh, QUESTIONS[1], CONSENTING)  # the weak model's wrong answer
    assert second.tier == common.TIER_SIMPLE and second.text == BOOK[QUESTIONS[1]][0]
    quality = (await client.stats(CONSENTING)).routing_quality
    assert (quality.tenant_id, quality.verdicts, quality.min_verdicts, quality.shadow_rate) == (CONSENTING, 2, 6, 1.0)
    assert quality.quality_retained == pytest.approx(0.5)
    assert quality.lower_bound == pytest.approx(wilson_lower(0.5, 2))  # every routed answer was cheap
    assert quality.target == 0.9 and quality.threshold_offset == 0.0
    assert [(t.tier, t.verdicts, t.as_good, t.served) for t in quality.tiers] == [(common.TIER_SIMPLE, 2, 1, 2)]

    for question in QUESTIONS[2:]:
        answer = await ask(client, mesh, question, CONSENTING)
        assert answer.tier == common.TIER_SIMPLE and answer.text == BOOK[question][0]
    moved = (await client.stats(CONSENTING)).routing_quality  # the 6th verdict: 3 of 6, bound 0.22 < 0.9
    assert moved.threshold_offset == pytest.approx(-0.025) and moved.threshold_moves == 1
    assert moved.verdicts == 0 and moved.tiers[0].total_verdicts == 6 and moved.tiers[0].total_as_good == 3
    assert routing.counters_by_verdict == {"as_good": 3, "worse": 3} and routing.counters.failed == 0

    assert routing.offset_for(CONSENTING) == pytest.approx(-0.025)  # what the next classifications carry
    again = {question: await ask(client, mesh, question, CONSENTING) for question in QUESTIONS}
    strong = {q for q, answer in again.items() if answer.tier in STRONG_TIERS}
    assert strong == MOVED  # more of the tenant's requests now start on the strong tiers
    for question in MOVED:
        assert again[question].text == BOOK[question][1]  # and get the strong answer
    assert routing.counters.dropped == 0 and routing.counters.failed == 0

    # every check its own cost line of the routing layer: the premium call plus the judge's
    lines = [r for r in read_records(records_dir) if r.tenant_id == CONSENTING]
    checked = [r for r in lines if r.kind == "shadow"]
    requests = {r.request_id: r for r in lines if r.kind == "request"}
    assert len(checked) == 12 and all(r.check == "routing" for r in checked)
    assert sorted(r.verdict for r in checked[:6]) == ["as_good"] * 3 + ["worse"] * 3
    for line in checked:
        assert line.request_id in requests and line.model == "claude-opus-4-5" and line.tier == "complex"
        assert line.checked_tier == requests[line.request_id].tier
        assert line.cost_usd > line.judge_usd > 0 and line.baseline_usd == 0
        assert line.savings["routing"] == -line.cost_usd and line.saving_usd == -line.cost_usd
    assert routing.counters.cost_usd == pytest.approx(sum(r.cost_usd for r in checked))
    rows = await routing.ledger.rows(CONSENTING)  # kept with consent, for train-router --from-records
    assert len(rows) == 12 and {r["prompt"] for r in rows} == set(QUESTIONS)


async def test_a_tenant_that_did_not_consent_is_never_checked(client, mesh, records_dir):
    routing = checks(mesh)
    before = routing.counters.queued
    for question in sorted(MOVED):  # moved for the consenting tenant only
        answer = await ask(client, mesh, question, REFUSING)
        assert answer.tier == common.TIER_SIMPLE and answer.text == BOOK[question][0]
    assert routing.counters.queued == before
    assert not [r for r in read_records(records_dir) if r.tenant_id == REFUSING and r.kind == "shadow"]
    stats = await client.stats(REFUSING)
    assert not stats.HasField("routing_quality") and stats.requests == 2


async def test_the_savings_report_shows_the_routing_checks(mesh, records_dir):
    from costmesh.tooling.report.summary import format_table, summarize

    summary = summarize(read_records(records_dir), 0, time.time() + 60)
    checked = [r for r in read_records(records_dir) if r.kind == "shadow"]
    assert summary.routing_checks.checks == len(checked) == 12 and summary.shadow.checks == 0
    assert summary.routing_checks.cost_usd == pytest.approx(sum(r.cost_usd for r in checked))
    assert summary.requests == len([r for r in read_records(records_dir) if r.kind == "request"])
    table = format_table(summary)
    assert "shadow checks of routing" in table and "as good as the premium" in table
