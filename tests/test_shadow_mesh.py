"""Shadow checks end to end (issue 22): the whole mesh in process (real gRPC servers, real Redis,
the packaged verifier and cross-encoder), the simulator answering from a book of our own.

The verifier is forced low (COSTMESH_CACHE_MAX_FALSE_HIT_RATE=0.5: threshold 0.005), so the
trap "... on Sunday?" is served the answer cached for "... on Monday?". A consenting tenant's
semantic hits are shadow-checked: the fresh answer differs, the judge says so, the live
estimate and its bound move, and after the minimum of verdicts the tenant's threshold rises
and the trap is refused. A tenant that did not consent is never shadowed. Every check is billed
as its own cost line, and the savings report shows it."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import read_records
from costmesh.gateway.shadow import ShadowChecks
from costmesh.intervals import wilson_upper
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

MONDAY, SUNDAY = "What time does the store open on Monday?", "What time does the store open on Sunday?"
RESET, RESET_AGAIN = "How do I reset my password?", "How can I reset my password?"
BOOK = {
    MONDAY: "The store opens at 9 am on Mondays.",
    SUNDAY: "The store is closed on Sundays.",
    RESET: "Open Settings, choose Security, then Reset password.",
    RESET_AGAIN: "Go to Settings > Security and pick Reset password.",
}
CONSENTING, REFUSING = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def simulator(tmp_path_factory):
    book = tmp_path_factory.mktemp("book") / "shadow_routing_test.jsonl.gz"
    with gzip.open(book, "wt") as handle:
        for prompt, answer in BOOK.items():
            handle.write(json.dumps({"prompt": prompt, "weak_response": answer, "strong_response": answer}) + "\n")
    sim = await start_simulator(port=0, books=[str(book)])
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The packaged catalog with a price on the embedding model (the cross-encoder judge's tokens are
    billed at it; the local model's price is 0 by default)."""
    import costmesh.catalog

    packaged = (Path(costmesh.catalog.__file__).parent / "models.toml").read_text()
    assert "usd_per_mtok = 0.0" in packaged
    path = tmp_path_factory.mktemp("catalog") / "models.toml"
    path.write_text(packaged.replace("usd_per_mtok = 0.0", "usd_per_mtok = 0.02", 1))
    return path


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, records_dir, catalog):
    env = {
        "COSTMESH_CATALOG": str(catalog),
        "COSTMESH_RECORDS_DIR": str(records_dir),
        "COSTMESH_CACHE_INDEX_PREFIX": f"shadow-mesh-{uuid.uuid4().hex[:6]}",
        "COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "0.5",
        "COSTMESH_CACHE_SHADOW_MAX_FALSE_HIT_RATE": "0.05",
        "COSTMESH_CACHE_SHADOW_MIN_VERDICTS": "3",
        "COSTMESH_CACHE_SHADOW_THRESHOLD_STEP": "0.1",
        "COSTMESH_CACHE_TENANT_POLICIES": json.dumps({CONSENTING: {"shadow_rate": 1.0, "keep_shadow_pairs": True}}),
    }
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), env)
    yield mesh
    await mesh.stop()


@pytest.fixture(scope="module")
async def client(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
        yield client


def shadows(mesh) -> ShadowChecks:
    gateway = next(item.servicer for item in mesh.services["gateway"].mounted.servicers
                   if hasattr(item.servicer, "_pipeline"))
    return next(o for o in gateway._pipeline._observers if isinstance(o, ShadowChecks))


def cache_servicer(mesh):
    return next(item.servicer for item in mesh.services["cache"].mounted.servicers if hasattr(item.servicer, "_core"))


async def ask(client, mesh, question: str, tenant: str) -> gw.CompleteResponse:
    response = await client.complete(build_request(question, tenant=tenant))
    await mesh.stores_settled()
    await shadows(mesh).drain()
    return response


async def live(mesh, tenant: str) -> pb.LiveFalseHitEstimate:
    return (await cache_servicer(mesh).GetStats(pb.GetStatsRequest(tenant_id=tenant), None)).live


async def test_a_consenting_tenants_false_hits_are_found_counted_and_then_refused(client, mesh, records_dir):
    checks = shadows(mesh)
    for question in (MONDAY, RESET):
        first = await ask(client, mesh, question, CONSENTING)
        assert first.cache_status == gw.CACHE_STATUS_MISS and first.text == BOOK[question]

    paraphrase = await ask(client, mesh, RESET_AGAIN, CONSENTING)
    assert paraphrase.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT and paraphrase.text == BOOK[RESET]
    assert (checks.counters.done, checks.counters.same, checks.counters.different) == (1, 1, 0)
    start = await live(mesh, CONSENTING)
    assert (start.verdicts, start.false_hits, start.upper_bound) == (1, 0, pytest.approx(wilson_upper(0.0, 1)))
    calibrated = start.calibrated_threshold

    trap = await ask(client, mesh, SUNDAY, CONSENTING)  # the verifier (forced low) serves Monday's answer
    assert trap.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT and trap.text == BOOK[MONDAY]
    assert checks.counters.different == 1
    middle = await live(mesh, CONSENTING)
    assert (middle.verdicts, middle.false_hits) == (2, 1)
    assert middle.false_hit_rate == pytest.approx(0.5) and middle.upper_bound == pytest.approx(wilson_upper(0.5, 2))
    assert middle.threshold == pytest.approx(calibrated)  # 2 verdicts: under the minimum of 3

    again = await ask(client, mesh, SUNDAY, CONSENTING)  # the third verdict moves the threshold
    assert again.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT and checks.counters.different == 2
    moved = await live(mesh, CONSENTING)
    assert moved.threshold == pytest.approx(calibrated + 0.1) and moved.threshold_moves == 1
    assert (moved.total_verdicts, moved.total_false_hits, moved.verdicts) == (3, 2, 0)

    refused = await ask(client, mesh, SUNDAY, CONSENTING)  # now refused: the model answers it
    assert refused.cache_status == gw.CACHE_STATUS_MISS and refused.text == BOOK[SUNDAY]
    still = await ask(client, mesh, RESET_AGAIN, CONSENTING)  # a true paraphrase still hits (and is checked)
    assert still.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT and checks.counters.same == 2
    assert checks.counters.dropped == 0 and checks.counters.failed == 0

    # every check is its own cost line: the fresh call plus the judgement, verdict, no baseline
    lines = [r for r in read_records(records_dir) if r.tenant_id == CONSENTING]
    shadow_lines = [r for r in lines if r.kind == "shadow"]
    requests = {r.request_id: r for r in lines if r.kind == "request"}
    assert [r.verdict for r in sorted(shadow_lines, key=lambda r: r.ts)] == ["same", "different", "different", "same"]
    for line in shadow_lines:
        assert line.request_id in requests and requests[line.request_id].cache == "semantic_hit"
        assert line.cost_usd > 0 and line.baseline_usd == 0 and line.saving_usd == -line.cost_usd
        assert line.savings["cache"] == -line.cost_usd and line.model and line.output_tokens > 0
        assert 0 < line.judge_usd < line.cost_usd  # the cross-encoder's tokens at the embedding price
    assert checks.counters.cost_usd == pytest.approx(sum(r.cost_usd for r in shadow_lines))


async def test_a_tenant_that_did_not_consent_is_never_shadowed(client, mesh, records_dir):
    checks = shadows(mesh)
    before = checks.counters.queued
    await ask(client, mesh, RESET, REFUSING)
    for _ in range(2):
        hit = await ask(client, mesh, RESET_AGAIN, REFUSING)
        assert hit.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT
    assert checks.counters.queued == before
    assert not [r for r in read_records(records_dir) if r.tenant_id == REFUSING and r.kind == "shadow"]
    assert (await live(mesh, REFUSING)).total_verdicts == 0


async def test_the_savings_report_shows_the_checks_as_their_own_line(mesh, records_dir):
    import time

    from costmesh.tooling.report.summary import format_table, summarize

    summary = summarize(read_records(records_dir), 0, time.time() + 60)
    shadow_lines = [r for r in read_records(records_dir) if r.kind == "shadow"]
    assert summary.shadow_checks == len(shadow_lines) == 4
    assert summary.requests == len([r for r in read_records(records_dir) if r.kind == "request"])
    assert summary.shadow_cost_usd == pytest.approx(sum(r.cost_usd for r in shadow_lines))
    table = format_table(summary)
    assert "shadow checks" in table and "false hits" in table


async def test_an_llm_judge_through_the_router_decides_and_is_billed(redis_url, simulator, tmp_path):
    """COSTMESH_GATEWAY_SHADOW_JUDGE=llm: a judge prompt to a pinned model through the router (the
    simulator's judge mode answers SAME or DIFFERENT from the two answers), its verdict counted by
    the cache as the caller's, its call billed in the check's line."""
    tenant = f"initech-{uuid.uuid4().hex[:6]}"
    env = {
        "COSTMESH_RECORDS_DIR": str(tmp_path),
        "COSTMESH_CACHE_INDEX_PREFIX": f"shadow-llm-{uuid.uuid4().hex[:6]}",
        "COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "0.5",
        "COSTMESH_CACHE_TENANT_POLICIES": json.dumps({tenant: {"shadow_rate": 1.0}}),
        "COSTMESH_GATEWAY_SHADOW_JUDGE": "llm",
        "COSTMESH_GATEWAY_SHADOW_JUDGE_MODEL": "gpt-5-nano",
    }
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), env)
    try:
        async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
            for question in (MONDAY, RESET, RESET_AGAIN, SUNDAY):
                await ask(client, mesh, question, tenant)
        checks = shadows(mesh)
        assert (checks.counters.same, checks.counters.different, checks.counters.failed) == (1, 1, 0)
        estimate = await live(mesh, tenant)
        assert (estimate.total_verdicts, estimate.total_false_hits) == (2, 1)
        lines = sorted((r for r in read_records(tmp_path) if r.kind == "shadow"), key=lambda r: r.ts)
        assert [r.verdict for r in lines] == ["same", "different"]
        assert all(0 < r.judge_usd < r.cost_usd for r in lines)  # the judge model's call, billed
    finally:
        await mesh.stop()
