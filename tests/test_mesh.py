"""The request path through real services (in-process gRPC servers), real Redis, the simulator."""

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request
from costmesh.tooling.redis_embedded import EmbeddedRedis

from inprocess_mesh import start_inprocess_mesh

HOPS = {
    "gateway": "/costmesh.gateway.v1.GatewayService/Complete",
    "cache": "/costmesh.cache.v1.CacheService/Lookup",
    "classifier": "/costmesh.classifier.v1.ClassifierService/Classify",
    "router": "/costmesh.router.v1.RouterService/Execute",
    "provider": "/costmesh.provider.v1.ProviderService/Generate",
}


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, spans):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, spans[0])
    yield mesh
    await mesh.stop()


@pytest.fixture
async def client(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
        yield client


async def test_answer_comes_from_the_provider_then_a_paraphrase_hits_the_cache(client, mesh):
    first = await client.complete(build_request("How do I reset my password on the router?", tenant="acme"))
    assert first.text and not first.cached
    assert first.cache_status == gw.CACHE_STATUS_MISS
    assert first.model and first.provider in ("openai", "anthropic")
    assert first.tier != common.TIER_UNSPECIFIED
    assert first.cost.total_usd > 0
    assert first.baseline_cost_usd >= first.cost.total_usd
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert_micro_usd(first)

    await mesh.stores_settled()
    again = await client.complete(build_request("How do I reset my password on the router?", tenant="acme"))
    assert again.cached and again.cache_status == gw.CACHE_STATUS_EXACT_HIT
    assert again.text == first.text

    paraphrase = await client.complete(build_request("How do I reset the password on my router?", tenant="acme"))
    assert paraphrase.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT
    assert paraphrase.text == first.text
    assert paraphrase.cost.total_usd < first.cost.total_usd
    assert paraphrase.saving_usd == pytest.approx(first.baseline_cost_usd - paraphrase.cost.total_usd)
    assert_micro_usd(paraphrase)

    other_tenant = await client.complete(build_request("How do I reset my password on the router?", tenant="globex"))
    assert not other_tenant.cached and other_tenant.cache_status == gw.CACHE_STATUS_MISS


async def test_a_book_prompt_gets_the_recorded_answer(client):
    from costmesh.tooling.datasets import data_dir, load_book

    record = next(r for r in load_book(data_dir() / "gsm8k_routing_dev.jsonl.gz", limit=50) if r.weak_response)
    reply = await client.complete(build_request(record.prompt, tenant="books", bypass_cache=True, max_tokens=2048))
    assert reply.cache_status == gw.CACHE_STATUS_BYPASSED
    assert reply.text.strip() in (record.weak_response.strip(), (record.strong_response or "").strip())


async def test_one_trace_has_a_span_per_hop_with_costs(client, spans):
    _, exporter = spans
    exporter.clear()
    reply = await client.complete(build_request("Name three prime numbers above 100.", tenant="trace"))
    assert not reply.cached
    finished = exporter.get_finished_spans()
    servers = {s.name: s for s in finished if s.kind.name == "SERVER"}
    for hop, name in HOPS.items():
        assert name in servers, f"no {hop} span; got {sorted(servers)}"
    trace_ids = {servers[name].context.trace_id for name in HOPS.values()}
    assert len(trace_ids) == 1, "the hops are not in one trace"
    for name in HOPS.values():
        span = servers[name]
        assert span.end_time > span.start_time
    gateway_span = servers[HOPS["gateway"]]
    # the span the exact amounts, the answer those rounded to the micro-dollar
    assert gateway_span.attributes["costmesh.cost_usd"] == pytest.approx(reply.cost.total_usd, abs=3e-6)
    assert gateway_span.attributes["costmesh.baseline_cost_usd"] == pytest.approx(reply.baseline_cost_usd, abs=5e-7)
    assert servers[HOPS["router"]].attributes["costmesh.cost_usd"] > 0
    assert servers[HOPS["provider"]].attributes["costmesh.cost_usd"] > 0
    # Parent links: each downstream server span descends from the gateway's span.
    by_id = {s.context.span_id: s for s in finished}
    for hop in ("cache", "classifier", "router", "provider"):
        span = servers[HOPS[hop]]
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
        assert span is gateway_span, f"{hop} span does not descend from the gateway span"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("messages"), "messages"),
        (lambda r: setattr(r.messages[0].content[0], "text", ""), "messages[0].content"),
        (lambda r: setattr(r.messages[0].content[0], "text", "x" * 10_000_000), "messages"),
        (lambda r: setattr(r.messages[0], "role", 42), "messages[0].role"),
        (lambda r: setattr(r.sampling, "max_tokens", 0), "sampling.max_tokens"),
        (lambda r: setattr(r.sampling, "max_tokens", -1), "sampling.max_tokens"),
    ],
)
async def test_bad_input_is_invalid_argument(client, mutate, field):
    request = build_request("hello")
    mutate(request)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.complete(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)


async def test_streaming_yields_the_text_then_the_bill(client, mesh):
    request = gw.StreamCompleteRequest(request=build_request("Explain what a hash map is.", tenant="stream"))
    deltas, final = [], None
    async for event in client.stub.StreamComplete(request, timeout=60):
        if event.WhichOneof("event") == "text_delta":
            deltas.append(event.text_delta)
        else:
            final = event.final
    assert final is not None and "".join(deltas).strip()
    assert final.cost.total_usd > 0 and final.model
    assert_micro_usd(final)
    await mesh.stores_settled()
    again = await client.complete(build_request("Explain what a hash map is.", tenant="stream"))
    assert again.cached and again.text == "".join(deltas)


async def test_stats_count_what_happened(client):
    stats = await client.stats("acme")  # the figures of one tenant: GetStats reports no other's
    assert stats.tenant_id == "acme"
    assert stats.requests >= 3
    assert stats.exact_hits >= 1 and stats.semantic_hits >= 1
    assert stats.baseline_cost_usd > stats.cost_usd > 0
    assert stats.baseline_cost_micro_usd > stats.cost_micro_usd > 0
    assert stats.saving_micro_usd == stats.baseline_cost_micro_usd - stats.cost_micro_usd
    assert abs(stats.cost_micro_usd - stats.cost_usd * 1e6) <= 4 * stats.requests  # each answer's rounding at most


def assert_micro_usd(response: gw.CompleteResponse) -> None:
    """The integer micro-dollars beside the doubles: each amount rounded once, the sums exact."""
    cost = response.cost
    assert cost.input_micro_usd == round(cost.input_usd * 1e6) and cost.output_micro_usd == round(cost.output_usd * 1e6)
    parts = (cost.input_micro_usd + cost.cache_read_micro_usd + cost.cache_write_micro_usd + cost.output_micro_usd
             + cost.embedding_micro_usd)
    assert cost.total_micro_usd == parts - cost.discount_micro_usd
    assert abs(cost.total_micro_usd - cost.total_usd * 1e6) <= 4
    assert response.baseline_cost_micro_usd == round(response.baseline_cost_usd * 1e6) > 0
    assert response.saving_micro_usd == response.baseline_cost_micro_usd - cost.total_micro_usd
    for layer in ("cache", "routing", "prompt_caching", "batch", "inference"):
        assert getattr(response.savings, f"{layer}_micro_usd") == round(getattr(response.savings, f"{layer}_usd") * 1e6)


async def test_with_redis_down_requests_are_answered_uncached(simulator, spans):
    redis = EmbeddedRedis()
    redis.start()
    mesh = await start_inprocess_mesh(redis.url, simulator.url, spans[0],
                                      {"COSTMESH_CACHE_REDIS_TIMEOUT_MS": "200"})
    try:
        async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
            warm = await client.complete(build_request("What is the boiling point of water?", tenant="down"))
            assert warm.cache_status == gw.CACHE_STATUS_MISS
            redis.stop()
            reply = await client.complete(build_request("What is the boiling point of water?", tenant="down"))
            assert reply.text and not reply.cached
            assert reply.cache_status == gw.CACHE_STATUS_UNAVAILABLE
            stats = await client.stats("down")
            assert stats.cache_unavailable >= 1
    finally:
        await mesh.stop()
        redis.stop()
