"""The OpenAI-compatible HTTP API, through the official `openai` SDK (unmodified, only its
base_url and api_key set) against the in-process mesh, real Redis and the simulator."""

import aiohttp
import grpc
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def exporter():
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mesh = await start_inprocess_mesh(redis_url, simulator.url, provider)
    yield mesh
    await mesh.stop()


def sdk(mesh, tenant: str = "http-acme") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mesh.http_url, api_key=mesh.api_key(tenant), max_retries=0)


async def test_the_openai_sdk_completes_with_costmesh_extras_in_headers_and_body(mesh):
    client = sdk(mesh)
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=200,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "What does the HTTP status code 418 mean?"}],
    )
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.model in load_catalog().models
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    extras = reply.model_extra["costmesh"]
    assert extras["cache"] == {"hit": False, "status": "miss", "similarity": 0.0}
    assert extras["tier"] in ("trivial", "simple", "moderate", "complex")
    assert extras["cost_usd"] > 0 and extras["baseline_cost_usd"] >= extras["cost_usd"]
    assert extras["saving_usd"] == pytest.approx(extras["baseline_cost_usd"] - extras["cost_usd"])
    assert raw.headers["x-costmesh-cache"] == "miss"
    assert float(raw.headers["x-costmesh-cost-usd"]) == pytest.approx(extras["cost_usd"], rel=1e-6, abs=1e-9)
    assert raw.headers["x-costmesh-request-id"] == extras["request_id"] == reply.id.removeprefix("chatcmpl-")

    await mesh.stores_settled()
    again = await client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=200,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "What does the HTTP status code 418 mean?"}],
    )
    assert again.headers["x-costmesh-cache"] == "exact_hit" and again.headers["x-costmesh-cache-hit"] == "true"
    hit = again.parse()
    assert hit.choices[0].message.content == reply.choices[0].message.content
    assert hit.usage.prompt_tokens == 0 and hit.model_extra["costmesh"]["cost_usd"] < extras["cost_usd"]


async def test_the_openai_sdk_streams_and_the_last_chunk_carries_the_bill(mesh):
    client = sdk(mesh, "http-stream")
    # A pinned model streams straight through (the cascade buffers attempts its gate may reject).
    stream = await client.chat.completions.create(
        model="gpt-5-mini", max_tokens=200, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Explain in two sentences what a linked list is."}],
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model == "gpt-5-mini"
    assert finals[0].model_extra["costmesh"]["cost_usd"] > 0
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # The streamed answer was cached whole: the same question now comes back from the cache.
    again = await client.chat.completions.create(
        model="gpt-5-mini", max_tokens=200,
        messages=[{"role": "user", "content": "Explain in two sentences what a linked list is."}])
    assert again.model_extra["costmesh"]["cache"]["hit"] and again.choices[0].message.content == text


async def test_a_pinned_model_and_costmesh_options_are_honoured(mesh):
    client = sdk(mesh, "http-pin")
    reply = await client.chat.completions.create(
        model="gpt-5-nano", max_completion_tokens=100, temperature=0.2, stop=["\n\n\n"],
        messages=[{"role": "user", "content": "Name a colour."}],
        extra_body={"costmesh": {"cache": {"bypass": True}}},
    )
    assert reply.model == "gpt-5-nano"
    assert reply.model_extra["costmesh"]["cache"]["status"] == "bypassed"


async def test_models_come_from_the_catalog(mesh):
    client = sdk(mesh)
    models = [m.id async for m in client.models.list()]
    assert models[0] == "auto" and set(models[1:]) == set(load_catalog().models)
    one = await client.models.retrieve("gpt-5-nano")
    assert one.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-2")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x", "tool_call_id": "1"}]},
         "messages[1].tool_call_id"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "x": 1}]}]}, "messages[0].content[0].type"),
        ({"messages": []}, "messages"),
        ({"model": "gpt-2"}, "model"),
        ({"extra_body": {"costmesh": {"cache": {"ttl_seconds": -1}}}}, "costmesh.cache.ttl_seconds"),
        ({"extra_body": {"costmesh": {"routing": {"min_tier": "huge"}}}}, "costmesh.routing.min_tier"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
        ({"tools": [{"type": "function", "function": {"name": "f",
                                                      "parameters": {"type": "object", "properties": 3}}}]},
         "tools[0].function.parameters"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    ],
)
async def test_bad_input_is_a_400_naming_the_parameter(mesh, kwargs, param):
    request = {"model": "auto", "messages": [{"role": "user", "content": "hello"}], **kwargs}
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(mesh).chat.completions.create(**request)
    assert error.value.status_code == 400
    assert error.value.type == "invalid_request_error"
    assert error.value.param == param, error.value.message


async def test_a_bad_stream_request_is_refused_before_any_event(mesh):
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(mesh).chat.completions.create(model="auto", max_tokens=-3, stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
    assert error.value.param == "max_tokens"


async def test_missing_unknown_and_revoked_keys_get_401(mesh):
    async with aiohttp.ClientSession() as session:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
        async with session.post(f"{mesh.http_url}/chat/completions", json=body) as response:
            assert response.status == 401
            error = (await response.json())["error"]
            assert error["code"] == "invalid_api_key" and "missing API key" in error["message"]
        async with session.get(f"{mesh.http_url}/models") as response:
            assert response.status == 401
        async with session.get(f"{mesh.http_url}/nowhere") as response:
            assert response.status == 404 and (await response.json())["error"]["type"] == "invalid_request_error"
    bad = openai.AsyncOpenAI(base_url=mesh.http_url, api_key="cm_0000_forged", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await bad.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])

    from costmesh.gateway.auth import KeyStore

    store = KeyStore(mesh.keys_file)
    key, record = store.create("http-revoked")
    client = openai.AsyncOpenAI(base_url=mesh.http_url, api_key=key, max_retries=0)
    assert [m.id async for m in client.models.list()]
    store.revoke(record.key_id)
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_a_missing_key_is_refused_over_grpc_too(mesh):
    async with GatewayClient(mesh.gateway) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await anonymous.complete(build_request("hello"))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await anonymous.stats()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with GatewayClient(mesh.gateway, api_key="cm_0000_forged") as forged:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await forged.complete(build_request("hello"))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tenant_a_never_reads_tenant_b_cache(mesh):
    question = "Which planet has the most moons in the solar system?"
    messages = [{"role": "user", "content": question}]
    b = await sdk(mesh, "tenant-b").chat.completions.create(model="auto", max_tokens=200, messages=messages)
    assert not b.model_extra["costmesh"]["cache"]["hit"]
    b_again = await sdk(mesh, "tenant-b").chat.completions.create(model="auto", max_tokens=200, messages=messages)
    assert b_again.model_extra["costmesh"]["cache"]["hit"]  # the answer is cached, for tenant B

    a = await sdk(mesh, "tenant-a").chat.completions.create(model="auto", max_tokens=200, messages=messages)
    assert not a.model_extra["costmesh"]["cache"]["hit"]
    paraphrase = [{"role": "user", "content": "Which planet in the solar system has the most moons?"}]
    a_para = await sdk(mesh, "tenant-c").chat.completions.create(model="auto", max_tokens=200, messages=paraphrase)
    assert not a_para.model_extra["costmesh"]["cache"]["hit"]

    # Over gRPC, tenant A's key cannot claim tenant B in the body either.
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("tenant-a")) as client:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.complete(build_request(question, tenant="tenant-b"))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith("tenant_id")
        reply = await client.complete(build_request("Which gas do plants absorb from the air?"))
        assert reply.cache_status == gw.CACHE_STATUS_MISS
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("tenant-b")) as client:
        reply = await client.complete(build_request("Which gas do plants absorb from the air?"))
        assert reply.cache_status == gw.CACHE_STATUS_MISS and not reply.cached


async def test_an_http_request_is_one_trace_through_every_hop(mesh, exporter):
    exporter.clear()
    await sdk(mesh, "http-trace").chat.completions.create(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "Name three sorting algorithms."}])
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "POST /v1/chat/completions")
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["costmesh.cost_usd"] > 0
    hops = {s.name for s in spans if s.context.trace_id == root.context.trace_id and s.kind.name == "SERVER"}
    for name in ("/costmesh.cache.v1.CacheService/Lookup", "/costmesh.router.v1.RouterService/Execute",
                 "/costmesh.provider.v1.ProviderService/Generate"):
        assert name in hops, sorted(hops)


async def test_an_http_callers_traceparent_is_continued(mesh, exporter):
    """The caller's W3C trace context: the gateway's server span joins the caller's trace as
    the child of the caller's span, and the downstream hops follow it."""
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    exporter.clear()
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "Authorization": f"Bearer {mesh.api_key('http-tp')}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{mesh.http_url}/models", headers=headers) as reply:
            assert reply.status == 200
        body = {"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content": "Name a prime."}]}
        async with session.post(f"{mesh.http_url}/chat/completions", headers=headers, json=body) as reply:
            assert reply.status == 200, await reply.text()
    spans = exporter.get_finished_spans()
    for name in ("GET /v1/models", "POST /v1/chat/completions"):
        (server,) = [s for s in spans if s.name == name]
        assert server.kind.name == "SERVER"
        assert format(server.context.trace_id, "032x") == trace_id
        assert server.parent is not None and server.parent.is_remote
        assert format(server.parent.span_id, "016x") == parent_id
    lookup = [s for s in spans if s.name.endswith("CacheService/Lookup") and s.kind.name == "SERVER"]
    assert lookup and all(format(s.context.trace_id, "032x") == trace_id for s in lookup)

    exporter.clear()  # no traceparent: a new trace, the gateway's span its root
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{mesh.http_url}/models", headers={"Authorization": headers["Authorization"]}) as r:
            assert r.status == 200
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "GET /v1/models"]
    assert root.parent is None and format(root.context.trace_id, "032x") != trace_id


async def test_an_upstream_that_keeps_answering_429_is_an_openai_style_429_with_retry_after(mesh, simulator):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{simulator.url}/_sim/faults",
                                json={"model": "gpt-5-nano", "status": 429, "count": 100, "retry_after": 0}) as r:
            assert r.status == 200
        try:
            with pytest.raises(openai.RateLimitError) as error:
                await sdk(mesh, "http-429").chat.completions.create(
                    model="gpt-5-nano", max_tokens=50, messages=[{"role": "user", "content": "Say hi."}],
                    extra_body={"costmesh": {"cache": {"bypass": True}}})
            assert error.value.status_code == 429
            assert error.value.response.headers["retry-after"] == "1"
            assert error.value.body["code"] == "rate_limit_exceeded" and "rate limited" in error.value.message
        finally:
            async with session.post(f"{simulator.url}/_sim/reset") as r:
                assert r.status == 200
