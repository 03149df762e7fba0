"""BatchService through the in-process mesh: the gateway authenticates and forwards to the batches
service; cache first, provider batch APIs (through the providers service) in the simulator, state in
Redis (the batches service and the gateway are restarted mid-batch), the batch discount in every
cost, limits refused."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.batch_limits import MB, check_size
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.convert import usage_from_pb
from costmesh.errors import InvalidRequest
from costmesh.pricing import cost_of
from costmesh.rpc.server import start_service
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import build_request

from inprocess_mesh import start_inprocess_mesh

CATALOG = load_catalog()
TENANT = "batchco"
RPC_TIMEOUT_S = 30  # no call may hang the suite


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0, batch_latency_s=1.5)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    # the rules verifier: this test is about batches, not about the learned verifier's artifact
    # generous hop timeouts: on a loaded machine a slow lookup would turn the expected cache hit into a miss
    env = {"COSTMESH_BATCH_POLL_S": "0.1", "COSTMESH_HTTP_PORT": "0", "COSTMESH_CACHE_VERIFIER": "rules",
           "COSTMESH_GATEWAY_CACHE_TIMEOUT_S": "30", "COSTMESH_GATEWAY_CLASSIFY_TIMEOUT_S": "30",
           "COSTMESH_BATCH_CACHE_TIMEOUT_S": "30", "COSTMESH_BATCH_CLASSIFY_TIMEOUT_S": "30"}
    mesh = await asyncio.wait_for(start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), extra_env=env), 120)
    mesh.env = {  # what a restarted batches service and gateway get
        "REDIS_URL": redis_url,
        "COSTMESH_LOG_LEVEL": "warning",
        "COSTMESH_API_KEYS_FILE": str(mesh.keys_file),
        "COSTMESH_MESH_SECRET_FILE": str(mesh.secret_file),
        "COSTMESH_CACHE_ADDR": mesh.service("cache").address,
        "COSTMESH_CLASSIFIER_ADDR": mesh.service("classifier").address,
        "COSTMESH_ROUTER_ADDR": mesh.service("router").address,
        "COSTMESH_PROVIDERS_ADDR": mesh.service("providers").address,
        **env,
    }
    yield mesh
    await mesh.stop()


def metadata(mesh) -> tuple:
    return (("authorization", f"Bearer {mesh.api_key(TENANT)}"),)


def item(request_id: str, prompt: str, model: str = "", max_tokens: int = 1024) -> gw.CompleteRequest:
    request = build_request(prompt, tenant=TENANT, max_tokens=max_tokens)
    request.request_id = request_id
    if model:
        request.routing.model = model
    return request


async def wait_ended(stub, mesh, batch_id: str, timeout_s: float = 120.0) -> gw.Batch:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        reply = await stub.GetBatch(gw.GetBatchRequest(batch_id=batch_id, include_results=True),
                                    metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)
        if reply.batch.status == gw.BATCH_STATUS_ENDED:
            return reply.batch
        assert asyncio.get_running_loop().time() < deadline, f"batch still {reply.batch.status}"
        await asyncio.sleep(0.2)


async def test_batch_cache_hits_discount_restart_and_cache_store(mesh):
    address = mesh.gateway
    async with grpc.aio.insecure_channel(address) as channel:
        complete = gateway_pb2_grpc.GatewayServiceStub(channel)
        warm = await complete.Complete(item("warm", "What is the capital of France?"),
                                       metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)
        assert not warm.cached
        stub = gateway_pb2_grpc.BatchServiceStub(channel)
        requests = [
            item("hit", "What is the capital of France?"),
            item("a1", "Summarise the causes of the French revolution.", "claude-sonnet-4-5"),
            item("a2", "Explain photosynthesis to a child.", "claude-haiku-4-5"),
            item("o1", "List three prime numbers.", "gpt-5-mini"),
            item("auto", "Write a haiku about batch processing."),
        ]
        submitted = (await stub.SubmitBatch(gw.SubmitBatchRequest(tenant_id=TENANT, requests=requests),
                                            metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)).batch
    assert submitted.status == gw.BATCH_STATUS_IN_PROGRESS
    assert (submitted.counts.total, submitted.counts.cache_hits, submitted.counts.pending) == (5, 1, 4)
    providers = {p.split(":")[0] for p in submitted.provider_batch_ids}
    assert {"anthropic", "openai"} <= providers

    # restart the batches service (and the gateway) in the middle of the batch: its state is in Redis,
    # the new one carries on; the gateway holds no state and no provider key
    await mesh.services.pop("gateway").stop(0.2)
    await mesh.services.pop("batches").stop(0.2)
    from costmesh.gateway.service import SPEC as GATEWAY
    from costmesh.services.batches.service import SPEC as BATCHES

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mesh.services["batches"] = await start_service(BATCHES, Env(mesh.env), tracer_provider=provider, port=0)
    gateway_env = {**mesh.env, "COSTMESH_BATCHES_ADDR": mesh.service("batches").address}
    mesh.services["gateway"] = await start_service(GATEWAY, Env(gateway_env), tracer_provider=provider, port=0)
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.BatchServiceStub(channel)
        done = await wait_ended(stub, mesh, submitted.batch_id)
        assert done.counts.succeeded == 5 and done.counts.pending == 0
        results = {r.request_id: r for r in done.results}
        assert results["hit"].response.cached and results["hit"].response.text == warm.text
        total_discount = 0.0
        for request_id in ("a1", "a2", "o1", "auto"):
            response = results[request_id].response
            assert results[request_id].status == gw.BATCH_ITEM_STATUS_SUCCEEDED and response.text
            spec = CATALOG.model(response.model)
            expected = cost_of(spec, usage_from_pb(response.usage), batch_discount=CATALOG.batch_discount)
            # whole micro-dollars, as the gateway sends every amount (each part rounded, the total their sum)
            assert response.cost.total_usd == response.cost.total_micro_usd / 1e6
            assert response.cost.total_usd == pytest.approx(expected.total_usd, abs=3e-6)
            assert response.cost.discount_usd == pytest.approx(expected.total_usd, abs=1e-6)  # half off = half paid
            assert response.savings.batch_usd == pytest.approx(response.cost.discount_usd, abs=1e-6)
            assert response.baseline_cost_usd > response.cost.total_usd
            total_discount += response.cost.discount_usd
        assert results["a1"].response.model == "claude-sonnet-4-5" and results["o1"].response.provider == "openai"
        page = (await stub.GetBatch(gw.GetBatchRequest(batch_id=submitted.batch_id, include_results=True,
                                                       results_offset=1, results_limit=2),
                                    metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)).batch
        assert [r.request_id for r in page.results] == ["a1", "a2"] and page.next_results_offset == 3
        assert page.cost.total_usd == pytest.approx(done.cost.total_usd)  # totals cover the whole batch
        assert results["auto"].response.tier != common.TIER_UNSPECIFIED
        assert done.savings.batch_usd == pytest.approx(total_discount, abs=4e-6)
        assert done.cost.total_usd == pytest.approx(sum(r.response.cost.total_usd for r in done.results))
        # the integer micro-dollars: the batch's are the exact sums of its answers'
        assert done.cost.total_micro_usd == sum(r.response.cost.total_micro_usd for r in done.results) > 0
        assert done.baseline_cost_micro_usd == sum(r.response.baseline_cost_micro_usd for r in done.results)
        assert done.savings.batch_micro_usd == sum(r.response.savings.batch_micro_usd for r in done.results) > 0
        assert done.saving_micro_usd == done.baseline_cost_micro_usd - done.cost.total_micro_usd
        assert all(r.response.saving_micro_usd == r.response.baseline_cost_micro_usd - r.response.cost.total_micro_usd
                   for r in done.results)
        spans = {s.attributes["costmesh.request_id"]: s for s in exporter.get_finished_spans()
                 if s.name == "costmesh.batch.answer"}
        assert set(spans) == {"a1", "a2", "o1", "auto"}
        # the spans carry the exact amounts; the answers, those rounded to the micro-dollar
        a1 = results["a1"].response
        assert spans["a1"].attributes["costmesh.cost_usd"] == pytest.approx(a1.cost.total_usd, abs=3e-6)
        assert spans["a1"].attributes["costmesh.cost.discount_usd"] > 0
        assert spans["a1"].attributes["costmesh.baseline_cost_usd"] == pytest.approx(a1.baseline_cost_usd, abs=5e-7)

        # the answers went into the cache: the same question asked interactively is a hit
        complete = gateway_pb2_grpc.GatewayServiceStub(channel)
        again = await complete.Complete(item("again", "Summarise the causes of the French revolution.",
                                             "claude-sonnet-4-5"), metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)
        assert again.cached and again.text == results["a1"].response.text


async def test_cancel_ends_with_cancelled_requests(mesh):
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.BatchServiceStub(channel)
        requests = [item(f"c{i}", f"Cancelled question number {i}?", "gpt-5-nano") for i in range(3)]
        requests[0].cache.bypass = True
        submitted = (await stub.SubmitBatch(gw.SubmitBatchRequest(tenant_id=TENANT, requests=requests),
                                            metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)).batch
        cancelled = (await stub.CancelBatch(gw.CancelBatchRequest(batch_id=submitted.batch_id),
                                            metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)).batch
        assert cancelled.status in (gw.BATCH_STATUS_CANCELING, gw.BATCH_STATUS_ENDED)
        done = await wait_ended(stub, mesh, submitted.batch_id)
        assert done.counts.canceled == 3 and done.cost.total_usd == 0


async def test_limits_and_bad_input_are_invalid_argument(mesh):
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.BatchServiceStub(channel)

        async def refused(requests, match: str) -> None:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.SubmitBatch(gw.SubmitBatchRequest(tenant_id=TENANT, requests=requests),
                                       metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert match in info.value.details()

        tiny = item("x", "hi", "gpt-5-nano")
        openai_over = []
        for i in range(50_001):
            request = gw.CompleteRequest()
            request.CopyFrom(tiny)
            request.request_id = str(i)
            openai_over.append(request)
        await refused(openai_over, "at most 50,000")
        tiny.routing.model = "claude-haiku-4-5"
        await refused([tiny] * 100_001, "at most 100,000")  # counted before anything else is looked at
        await refused([item("same", "a"), item("same", "b")], "requests[1].request_id")
        await refused([item("", "a")], "requests[0].request_id")
        await refused([item("m", "a", "no-such-model")], "no-such-model")
        empty = item("e", "a")
        empty.messages[0].content[0].text = " "
        await refused([empty], "requests[0].messages")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetBatch(gw.GetBatchRequest(batch_id="cmbatch_nope"),
                                metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_size_limits_as_documented():
    check_size("anthropic", 100_000, 256 * MB)
    check_size("openai", 50_000, 200 * MB)
    with pytest.raises(InvalidRequest, match="256 MB"):
        check_size("anthropic", 10, 256 * MB + 1)
    with pytest.raises(InvalidRequest, match="200 MB"):
        check_size("openai", 10, 200 * MB + 1)
    with pytest.raises(InvalidRequest, match="50,000"):
        check_size("openai", 50_001, 100)


def test_anthropic_batch_params_are_the_interactive_request_flattened():
    from costmesh.domain import Message, Part, Role, Sampling
    from costmesh.services.providers.batches import AnthropicBatches, BatchCall, OpenAIBatches

    doc = " ".join(f"Clause {i} of the shared contract." for i in range(400))
    messages = (Message.of(Role.SYSTEM, doc), Message(Role.USER, (Part(text="Which clause?"),)))
    sonnet, sampling = CATALOG.model("claude-sonnet-4-5"), Sampling(max_tokens=50, temperature=0.2)
    other = (Message.of(Role.SYSTEM, doc.replace("contract", "lease")), messages[1])
    calls = [BatchCall("r0", sonnet, messages, sampling, "t"), BatchCall("r1", sonnet, messages, sampling, "t"),
             BatchCall("r2", sonnet, other, sampling, "t")]
    payload = AnthropicBatches(client=None, discount=0.5).payload(calls)
    params = payload.body[0]["params"]
    assert [r["custom_id"] for r in payload.body] == ["r0", "r1", "r2"] and payload.requests == 3
    assert params["temperature"] == 0.2 and "extra_body" not in params
    # a prefix the batch shares: 1h (batches run for hours); one used once: the placement's own 5m
    assert params["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert payload.body[1]["params"]["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert payload.body[2]["params"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    line = OpenAIBatches(client=None, discount=0.5).payload([BatchCall("r1", CATALOG.model("gpt-5-mini"), messages,
                                                                        Sampling(max_tokens=50), "t")])
    body = __import__("json").loads(line.body)
    assert body["url"] == "/v1/chat/completions" and body["body"]["prompt_cache_key"].startswith("cm-")
    assert line.size_bytes == len(line.body)


async def test_the_gateway_authenticates_and_the_batch_is_the_keys_tenants(mesh):
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.BatchServiceStub(channel)
        request = gw.SubmitBatchRequest(requests=[item("k1", "Is this batch mine?", "gpt-5-nano")])
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitBatch(request, timeout=RPC_TIMEOUT_S)  # no key
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        request.requests[0].tenant_id = ""  # the key says whose it is
        submitted = (await stub.SubmitBatch(request, metadata=metadata(mesh), timeout=RPC_TIMEOUT_S)).batch
        assert submitted.tenant_id == TENANT
        other = (("authorization", f"Bearer {mesh.api_key('someone-else')}"),)
        with pytest.raises(grpc.aio.AioRpcError) as info:  # another tenant's batch does not exist for you
            await stub.GetBatch(gw.GetBatchRequest(batch_id=submitted.batch_id), metadata=other,
                                timeout=RPC_TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_gateway_without_the_batches_service_answers_unavailable(mesh):
    from costmesh.gateway.service import SPEC as GATEWAY

    gateway = await start_service(GATEWAY, Env(mesh.env), port=0)  # no COSTMESH_BATCHES_ADDR
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.BatchServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetBatch(gw.GetBatchRequest(batch_id="cmbatch_x"), metadata=metadata(mesh),
                                    timeout=RPC_TIMEOUT_S)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "COSTMESH_BATCHES_ADDR" in info.value.details()
    finally:
        await gateway.stop(0)
