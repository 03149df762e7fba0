"""Feedback end to end (issue 22): the whole mesh in process (real gRPC servers, real Redis, the
packaged verifier), the simulator answering from a book of our own. A semantic hit reported bad
by request id, over gRPC (`ReportFeedback`) and over HTTP (`POST /v1/feedback`), is removed from the
cache (asked again: a miss) and counts as a false hit in the tenant's live estimate; another
tenant's request id and an unknown one are NOT_FOUND / 404."""

from __future__ import annotations

import gzip
import json
import uuid

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

RESET, RESET_AGAIN = "How do I reset my password?", "How can I reset my password?"
HOURS, HOURS_AGAIN = "What are your opening hours?", "When are you open?"
BOOK = {
    RESET: "Open Settings, choose Security, then Reset password.",
    RESET_AGAIN: "Go to Settings > Security and pick Reset password.",
    HOURS: "We are open from 9 am to 5 pm.",
    HOURS_AGAIN: "From 9 to 5, Monday to Friday.",
}
ACME, GLOBEX = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def simulator(tmp_path_factory):
    book = tmp_path_factory.mktemp("book") / "feedback_test.jsonl.gz"
    with gzip.open(book, "wt") as handle:
        for prompt, answer in BOOK.items():
            handle.write(json.dumps({"prompt": prompt, "weak_response": answer, "strong_response": answer}) + "\n")
    sim = await start_simulator(port=0, books=[str(book)])
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    env = {
        "COSTMESH_CACHE_INDEX_PREFIX": f"feedback-mesh-{uuid.uuid4().hex[:6]}",
        "COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "0.5",  # the verifier forced low: paraphrases hit
        # consent to shadow checks (a live estimate), drawn (almost) never: the reports are the only verdicts
        "COSTMESH_CACHE_TENANT_POLICIES": json.dumps({ACME: {"shadow_rate": 1e-12}}),
    }
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), env)
    yield mesh
    await mesh.stop()


@pytest.fixture(scope="module")
async def client(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
        yield client


async def ask(client, mesh, question: str, tenant: str = ACME) -> gw.CompleteResponse:
    response = await client.complete(build_request(question, tenant=tenant))
    await mesh.stores_settled()
    return response


async def live(mesh) -> pb.LiveFalseHitEstimate:
    cache = next(item.servicer for item in mesh.services["cache"].mounted.servicers if hasattr(item.servicer, "_core"))
    return (await cache.GetStats(pb.GetStatsRequest(tenant_id=ACME), None)).live


async def test_a_reported_semantic_hit_is_removed_and_counted_over_grpc(client, mesh):
    assert (await ask(client, mesh, RESET)).cache_status == gw.CACHE_STATUS_MISS
    hit = await ask(client, mesh, RESET_AGAIN)
    assert hit.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT and hit.text == BOOK[RESET]

    with pytest.raises(grpc.aio.AioRpcError) as other:  # another tenant cannot report it
        await client.stub.ReportFeedback(gw.ReportFeedbackRequest(tenant_id=GLOBEX, request_id=hit.request_id))
    assert other.value.code() == grpc.StatusCode.NOT_FOUND

    out = await client.stub.ReportFeedback(gw.ReportFeedbackRequest(
        tenant_id=ACME, request_id=hit.request_id, reason="wrong steps"))
    assert (out.cache_status, out.entries_removed, out.verdict_counted) == (gw.CACHE_STATUS_SEMANTIC_HIT, 1, True)
    estimate = await live(mesh)
    assert (estimate.verdicts, estimate.false_hits) == (1, 1)

    again = await ask(client, mesh, RESET_AGAIN)  # the entry is gone: the model answers
    assert again.cache_status == gw.CACHE_STATUS_MISS and again.text == BOOK[RESET_AGAIN]
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await client.stub.ReportFeedback(gw.ReportFeedbackRequest(tenant_id=ACME, request_id=hit.request_id))
    assert twice.value.code() == grpc.StatusCode.NOT_FOUND


async def test_feedback_over_http(client, mesh):
    headers = {"authorization": f"Bearer {mesh.api_key(ACME)}"}
    async with aiohttp.ClientSession() as session:
        for question, status in ((HOURS, "miss"), (HOURS_AGAIN, "semantic_hit")):
            async with session.post(f"{mesh.http_url}/chat/completions", headers=headers, json={
                    "model": "auto", "messages": [{"role": "user", "content": question}]}) as response:
                assert response.status == 200
                request_id = response.headers["x-costmesh-request-id"]
                assert response.headers["x-costmesh-cache"] == status
            await mesh.stores_settled()
        before = await live(mesh)
        async with session.post(f"{mesh.http_url}/feedback", headers=headers,
                                json={"request_id": request_id, "reason": "not our hours"}) as response:
            body = await response.json()
            assert response.status == 200, body
        assert body == {"object": "feedback", "request_id": request_id, "cache_status": "semantic_hit",
                        "entries_removed": 1, "verdict_counted": True}
        after = await live(mesh)
        assert (after.total_verdicts, after.total_false_hits) == (before.total_verdicts + 1,
                                                                   before.total_false_hits + 1)
        other = {"authorization": f"Bearer {mesh.api_key(GLOBEX)}"}
        for hdrs, payload in ((headers, {"request_id": "no-such-request"}), (other, {"request_id": request_id})):
            async with session.post(f"{mesh.http_url}/feedback", headers=hdrs, json=payload) as response:
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "not_found"
        async with session.post(f"{mesh.http_url}/feedback", headers=headers, json={"reason": "x"}) as response:
            assert response.status == 400
