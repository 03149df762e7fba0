"""The whole path behind spend by key: a real gateway (authentication on) records the id of the
key each request came with, over gRPC (unary and streamed) and over HTTP, never the key; the
dashboard's API, served by that gateway on its HTTP port to an admin key, then adds spend by key
and by tenant up to what the callers were billed, and reports the running cache's verifier. An
admin key makes no completions, over gRPC or HTTP."""

from __future__ import annotations

import time

import aiohttp
import grpc
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import read_records
from costmesh.gateway.auth import ADMIN_ROLE, KeyStore
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, records_dir):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(),
                                      {"COSTMESH_RECORDS_DIR": str(records_dir)})
    yield mesh
    await mesh.stop()


async def test_each_record_names_its_key_and_the_dashboard_adds_them_up(mesh, records_dir):
    store = KeyStore(mesh.keys_file)
    web_key, web = store.create("dash-acme", "web")
    batch_key, batch = store.create("dash-acme", "batch")
    globex_key, globex = store.create("dash-globex", "app")
    started = time.time()
    billed: dict[str, float] = {}  # key id -> what its answers cost

    async with GatewayClient(mesh.gateway, web_key) as client:
        reply = await client.complete(build_request("Name two prime numbers above 90.", max_tokens=60))
        billed[web.key_id] = reply.cost.total_usd
    async with GatewayClient(mesh.gateway, batch_key) as client:
        final = None
        async for event in client.stub.StreamComplete(gw.StreamCompleteRequest(
                request=build_request("What is a monad, in one line?", max_tokens=60))):
            if event.HasField("final"):
                final = event.final
        billed[batch.key_id] = final.cost.total_usd
    sdk = openai.AsyncOpenAI(base_url=mesh.http_url, api_key=globex_key, max_retries=0)
    answer = await sdk.chat.completions.create(
        model="auto", max_tokens=60, messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    billed[globex.key_id] = answer.model_extra["costmesh"]["cost_usd"]

    records = [r for r in read_records(records_dir) if r.ts >= started - 1]
    assert sorted(r.key_id for r in records) == sorted(billed)
    by_key = {r.key_id: r for r in records}
    assert by_key[web.key_id].tenant_id == by_key[batch.key_id].tenant_id == "dash-acme"
    assert by_key[globex.key_id].tenant_id == "dash-globex"
    text = "".join(p.read_text() for p in records_dir.rglob("*.jsonl"))
    for key in (web_key, batch_key, globex_key):
        assert key not in text and key.split("_", 2)[2] not in text  # cm_<key id>_<secret>

    admin_key, _ = store.create("", "ops", role=ADMIN_ROLE)
    root = mesh.http_url.removesuffix("/v1")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin_key}"}) as session:
        period = {"since": str(started - 1), "until": "now"}
        async with session.get(f"{root}/admin/api/v1/spend", params=period) as reply:
            assert reply.status == 200
            body = await reply.json()
        async with session.get(f"{root}/admin/api/v1/verifier") as reply:
            assert reply.status == 200
            verifier = await reply.json()
    keys = {g["name"]: g for g in body["by"]["key"]["groups"]}
    assert set(keys) == set(billed)
    for key_id, cost in billed.items():
        assert keys[key_id]["requests"] == 1
        assert keys[key_id]["cost_usd"] == pytest.approx(cost, abs=2e-6)
    tenants = {g["name"]: g for g in body["by"]["tenant"]["groups"]}
    assert tenants["dash-acme"]["requests"] == 2
    assert tenants["dash-acme"]["cost_usd"] == pytest.approx(billed[web.key_id] + billed[batch.key_id], abs=2e-6)
    assert verifier["available"] and verifier["source"].startswith("the cache service")
    assert verifier["lookups"] >= 3 and 0 < verifier["max_false_hit_rate"] < 1 and verifier["verifier"]


async def test_an_admin_key_makes_no_completions(mesh):
    admin_key, _ = KeyStore(mesh.keys_file).create("", "ops", role=ADMIN_ROLE)
    async with GatewayClient(mesh.gateway, admin_key) as client:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.complete(build_request("What is 2 + 2?", max_tokens=20), timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin key" in refused.value.details()
    sdk = openai.AsyncOpenAI(base_url=mesh.http_url, api_key=admin_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await sdk.chat.completions.create(model="auto", max_tokens=20,
                                          messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert denied.value.status_code == 403 and denied.value.code == "permission_denied"
