"""Traces, metrics, logs and cost records of real requests through the in-process mesh.

One mesh for the module: every service a real aio gRPC server, real Redis, the simulator.
Spans go to an in-memory exporter AND over OTLP/gRPC to a receiver this test runs (built on
the opentelemetry-proto TraceService definitions, as Jaeger's OTLP receiver is). Every
service has its own Prometheus endpoint on a free port.
"""

from __future__ import annotations

import asyncio
import urllib.request

import aiohttp
import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.openmetrics import parser as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import read_records
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh


def request(prompt: str, *, request_id: str = "", **kwargs) -> gw.CompleteRequest:
    built = build_request(prompt, **kwargs)
    built.request_id = request_id
    return built

HOPS = {
    "gateway": ("costmesh.gateway.v1.GatewayService", "Complete"),
    "cache": ("costmesh.cache.v1.CacheService", "Lookup"),
    "classifier": ("costmesh.classifier.v1.ClassifierService", "Classify"),
    "router": ("costmesh.router.v1.RouterService", "Execute"),
    "provider": ("costmesh.provider.v1.ProviderService", "Generate"),
}
PARENT_HOP = {"cache": "gateway", "classifier": "gateway", "router": "gateway", "provider": "router"}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps every span it is sent."""

    def __init__(self):
        self.spans = []  # (resource service.name, span)

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
async def receiver():
    server = grpc.aio.server()
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, port
    await server.stop(0)


@pytest.fixture(scope="module")
def spans(receiver):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver[1]}", insecure=True), schedule_delay_millis=200))
    yield provider, memory
    provider.shutdown()


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator, spans, records_dir):
    env = {
        "COSTMESH_METRICS_PORT": "0",
        "COSTMESH_RECORDS_DIR": str(records_dir),
        "COSTMESH_HTTP_PORT": "0",
        "COSTMESH_AUTH": "off",
        "COSTMESH_ROUTER_GATE": "heuristic",
        "COSTMESH_ROUTER_MAX_RETRIES": "0",
        "COSTMESH_ROUTER_TRANSIENT_RETRIES": "0",
    }
    mesh = await start_inprocess_mesh(redis_url, simulator.url, spans[0], env)
    yield mesh
    await mesh.stop()


@pytest.fixture
async def client(mesh):
    async with GatewayClient(mesh.gateway) as client:
        yield client


def server_span(finished, hop):
    service, method = HOPS[hop]
    found = [s for s in finished if s.kind is SpanKind.SERVER and s.attributes.get("rpc.service") == service
             and s.attributes.get("rpc.method") == method]
    assert len(found) == 1, f"{hop}: {len(found)} server spans"
    return found[0]


async def test_one_trace_every_hop_with_costs_and_parent_links(client, spans, receiver):
    _, memory = spans
    memory.clear()
    stored = (await client.stats()).cache_stores
    reply = await client.complete(request("Name three prime numbers above 200.", tenant="trace-a"))
    assert not reply.cached and reply.cost.total_usd > 0
    for _ in range(100):  # the answer is stored after it is sent: wait for it, its spans are in the trace
        stats = await client.stats()
        if stats.cache_stores > stored and not stats.cache_stores_pending:
            break
        await asyncio.sleep(0.05)
    finished = memory.get_finished_spans()
    store = [s for s in finished if s.kind is SpanKind.SERVER and s.attributes.get("rpc.method") == "Store"]
    assert len(store) == 1 and store[0].context.trace_id == server_span(finished, "gateway").context.trace_id
    hops = {hop: server_span(finished, hop) for hop in HOPS}
    assert len({s.context.trace_id for s in hops.values()}) == 1

    # Parent links: each downstream server span's parent is its caller's client span, whose
    # parent is the caller's server span, or an internal span of the caller's under it (the
    # router's `router.attempt`).
    by_id = {s.context.span_id: s for s in finished}
    for hop, caller in PARENT_HOP.items():
        client_span = by_id[hops[hop].parent.span_id]
        assert client_span.kind is SpanKind.CLIENT, hop
        parent = by_id[client_span.parent.span_id]
        while parent.kind is SpanKind.INTERNAL:
            parent = by_id[parent.parent.span_id]
        assert parent.context.span_id == hops[caller].context.span_id, hop
    attempt = by_id[by_id[hops["provider"].parent.span_id].parent.span_id]
    assert attempt.name == "router.attempt" and attempt.attributes["costmesh.attempt"] == 0
    assert hops["gateway"].parent is None or hops["gateway"].parent.is_remote

    g = hops["gateway"].attributes  # the span: exact amounts; the reply: rounded to the micro-dollar
    assert g["costmesh.cost_usd"] == pytest.approx(reply.cost.total_usd, abs=3e-6)
    assert g["costmesh.baseline_cost_usd"] == pytest.approx(reply.baseline_cost_usd, abs=5e-7)
    assert g["costmesh.saving_usd"] == pytest.approx(reply.saving_usd, abs=3e-6)
    assert g["costmesh.request_id"] == reply.request_id
    assert g["costmesh.cache.status"] == "miss" and g["costmesh.cache.hit"] is False
    assert g["costmesh.tier"] and g["costmesh.classified_tier"]
    assert g["costmesh.complexity_score"] == pytest.approx(reply.complexity_score)
    assert g["costmesh.attempts"] == reply.attempts >= 1
    assert g["gen_ai.usage.input_tokens"] == reply.usage.input_tokens > 0
    assert g["gen_ai.usage.output_tokens"] == reply.usage.output_tokens > 0
    assert g["gen_ai.usage.cache_read.input_tokens"] == reply.usage.cache_read_tokens
    assert g["gen_ai.response.model"] == reply.model
    layers = sum(g[f"costmesh.saving.{k}_usd"] for k in ("cache", "routing", "prompt_caching", "batch", "inference"))
    assert layers == pytest.approx(reply.saving_usd, abs=3e-6)

    assert hops["cache"].attributes["costmesh.cache.hit"] is False
    assert 0 <= hops["classifier"].attributes["costmesh.complexity_score"] <= 1
    router = hops["router"].attributes
    assert router["costmesh.cost_usd"] > 0 and router["costmesh.attempts"] >= 1
    assert 0 <= router["costmesh.quality_score"] <= 1
    provider = hops["provider"].attributes
    assert provider["gen_ai.request.model"] == reply.model and provider["costmesh.cost_usd"] > 0
    assert provider["gen_ai.usage.input_tokens"] > 0
    assert provider["gen_ai.usage.cache_read.input_tokens"] == reply.usage.cache_read_tokens
    for span in hops.values():
        assert span.status.status_code is not StatusCode.ERROR

    # The same trace, exported over OTLP/gRPC, arrives at the receiver with the same links.
    trace_id = hops["gateway"].context.trace_id.to_bytes(16, "big")
    await asyncio.to_thread(spans[0].force_flush)  # the receiver answers on this loop
    received = {}
    for _ in range(50):
        received = {s.span_id: (service, s) for service, s in receiver[0].spans if s.trace_id == trace_id}
        if len(received) >= len(finished):
            break
        await asyncio.sleep(0.1)
    expected = {s.context.span_id.to_bytes(8, "big"): s for s in finished
                if s.context.trace_id == hops["gateway"].context.trace_id}
    assert set(received) == set(expected)
    for span_id, span in expected.items():
        service, otlp = received[span_id]
        assert otlp.name == span.name
        assert otlp.parent_span_id == (span.parent.span_id.to_bytes(8, "big") if span.parent else b"")
    otlp_gateway = received[hops["gateway"].context.span_id.to_bytes(8, "big")][1]
    cost = next(a.value.double_value for a in otlp_gateway.attributes if a.key == "costmesh.cost_usd")
    assert cost == pytest.approx(reply.cost.total_usd, abs=3e-6)


async def test_a_failed_provider_call_has_error_spans_and_still_a_cost_record(client, spans, simulator, records_dir):
    _, memory = spans
    memory.clear()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{simulator.url}/_sim/faults", json={"status": 500, "rate": 1.0}) as reply:
            assert reply.status == 200, await reply.text()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await client.complete(request("What is the capital of Peru?", tenant="fails",
                                                    bypass_cache=True, request_id="req-fail-1"))
        finally:
            async with http.post(f"{simulator.url}/_sim/reset") as reply:
                assert reply.status == 200
    assert failure.value.code() != grpc.StatusCode.OK
    finished = memory.get_finished_spans()
    gateway = server_span(finished, "gateway")
    assert gateway.status.status_code is StatusCode.ERROR
    assert gateway.attributes["rpc.grpc.status_code"] == failure.value.code().value[0]
    assert gateway.attributes["error.type"]
    providers = [s for s in finished if s.kind is SpanKind.SERVER
                 and s.attributes.get("rpc.service") == HOPS["provider"][0]]
    assert providers and all(s.status.status_code is StatusCode.ERROR for s in providers)
    router = server_span(finished, "router")
    assert router.status.status_code is StatusCode.ERROR
    failed = [r for r in read_records(records_dir) if r.request_id == "req-fail-1"]
    assert len(failed) == 1
    assert failed[0].outcome != "answered" and failed[0].tenant_id == "fails" and failed[0].error


async def scrape(port: int) -> dict:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return reply.read().decode()

    families = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(fetch)):
        families[family.name] = family
    return families


def samples(family, suffix: str = "", **labels) -> list:
    return [s for s in family.samples if s.name == family.name + suffix
            and all(s.labels.get(k) == v for k, v in labels.items())]


def value(family, suffix: str = "", **labels) -> float:
    return sum(s.value for s in samples(family, suffix, **labels))


async def test_every_service_exposes_the_seed_metrics(client, mesh):
    for tenant in ("m-1", "m-2", "m-3"):
        first = await client.complete(request("Explain what a mutex is, briefly.", tenant=tenant))
        again = await client.complete(request("Explain what a mutex is, briefly.", tenant=tenant))
        assert not first.cached and again.cached
    paraphrase = await client.complete(request("Briefly, what is a mutex?", tenant="m-1"))
    stats = await client.stats()

    ports = {name: service.metrics_port for name, service in mesh.services.items()}
    assert all(ports.values()) and len(set(ports.values())) == len(ports)
    gateway = await scrape(ports["gateway"])
    requests = gateway["costmesh_requests"]
    assert value(requests, "_total", outcome="answered") == stats.requests
    assert value(requests, "_total", cache="exact_hit") == stats.exact_hits >= 3
    assert value(requests, "_total", cache="semantic_hit") == stats.semantic_hits
    assert value(requests, "_total", cache="miss") >= 3
    assert {s.labels["tier"] for s in samples(requests, "_total")} >= {"cached"}
    # the metrics add up the exact amounts; GetStats, the answers' whole micro-dollars
    rounding = stats.requests * 3e-6
    assert value(gateway["costmesh_cost_usd"], "_total") == pytest.approx(stats.cost_usd, abs=rounding)
    assert value(gateway["costmesh_baseline_cost_usd"], "_total") == pytest.approx(stats.baseline_cost_usd,
                                                                                   abs=rounding)
    assert value(gateway["costmesh_saving_usd"], "_total", layer="cache") == pytest.approx(
        stats.savings.cache_usd + value(gateway["costmesh_saving_usd"], "_total", layer="cache_loss"), abs=rounding)
    assert value(gateway["costmesh_request_cost_usd"], "_count") == stats.requests
    assert value(gateway["costmesh_upgraded_requests"], "_total") >= 0
    assert samples(gateway["costmesh_upgraded_requests"], "_total")
    assert value(gateway["costmesh_daily_active_users"]) >= 3
    assert value(gateway["costmesh_daily_cost_per_active_user_usd"]) > 0
    ratio = value(gateway["costmesh_saving_ratio"])
    assert ratio == pytest.approx((stats.baseline_cost_usd - stats.cost_usd) / stats.baseline_cost_usd,
                                  abs=2 * rounding / stats.baseline_cost_usd)
    assert not [name for name in gateway if name.startswith("costmesh_cache_")]  # the cache's own endpoint has them
    duration = gateway["costmesh_rpc_server_duration_seconds"]
    assert value(duration, "_count", rpc_method="Complete", grpc_code="OK") >= 7

    cache = await scrape(ports["cache"])
    assert value(cache["costmesh_cache_lookups"], "_total") >= 7
    hits = value(cache["costmesh_cache_hit_similarity"], "_count")
    assert hits >= stats.exact_hits + stats.semantic_hits
    assert 0 < value(cache["costmesh_cache_hit_similarity"], "_sum") / hits <= 1.0001
    # The cache's own figures, on its own endpoint: the numbers its GetStats reports (read first:
    # an answer's store may still land in between, and counters only go up).
    async with grpc.aio.insecure_channel(mesh.service("cache").address) as channel:
        cache_stats = await cache_pb2_grpc.CacheServiceStub(channel).GetStats(cache_pb2.GetStatsRequest())
    cache = await scrape(ports["cache"])
    assert samples(cache["costmesh_cache_evictions"], "_total")
    assert value(cache["costmesh_cache_entries"]) >= 3
    assert value(cache["costmesh_cache_entry_bytes"]) > 0
    assert value(cache["costmesh_cache_redis_available"]) == 1
    assert value(cache["costmesh_cache_stores"], "_total", outcome="stored") >= cache_stats.stores >= 3
    assert value(cache["costmesh_cache_stores"], "_total", outcome="refused") >= cache_stats.stores_refused
    assert value(cache["costmesh_cache_lookups_busy"], "_total") >= cache_stats.lookups_busy
    assert value(cache["costmesh_cache_stores_busy"], "_total") >= cache_stats.stores_busy
    assert value(cache["costmesh_cache_verifier_rejections"], "_total") >= cache_stats.verifier_rejections
    assert value(cache["costmesh_cache_errors"], "_total") >= cache_stats.errors
    assert "costmesh_requests" not in cache  # one service's endpoint shows only its own metrics
    router = await scrape(ports["router"])
    quality = router["costmesh_quality_score"]
    assert value(quality, "_count") >= 3
    assert samples(quality, "_bucket", le="0.6")
    assert samples(router["costmesh_router_upgrades"], "_total")
    assert value(router["costmesh_rpc_server_duration_seconds"], "_count", rpc_method="Execute") >= 3
    classifier = await scrape(ports["classifier"])
    assert value(classifier["costmesh_classifier_requests"], "_total") >= 3
    providers = await scrape(ports["providers"])
    assert value(providers["costmesh_rpc_server_duration_seconds"], "_count", rpc_method="Generate") >= 3
    assert paraphrase.text


async def scrape_openmetrics(port: int) -> list:
    """The endpoint's OpenMetrics exposition, through the strict OpenMetrics parser (which
    rejects, among others, two metric families of one name: "Clashing name")."""
    def fetch() -> tuple[str, str]:
        ask = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(ask, timeout=10) as reply:
            return reply.headers["Content-Type"], reply.read().decode()

    content_type, text = await asyncio.to_thread(fetch)
    assert content_type.startswith("application/openmetrics-text"), content_type
    return list(openmetrics.text_string_to_metric_families(text))


async def test_every_endpoint_passes_a_strict_openmetrics_parser(client, mesh):
    """One instrument per fact: no service exports one name twice (the router once exported
    `costmesh_router_requests_total` from its stats and from its spans, with different labels)."""
    await client.complete(request("What is a semaphore, in one sentence?", tenant="om-1"))
    await client.complete(request("What is a semaphore, in one sentence?", tenant="om-1"))
    for name, service in mesh.services.items():
        families = await scrape_openmetrics(service.metrics_port)
        names = [f.name for f in families]
        assert len(names) == len(set(names)), f"{name}: {sorted(n for n in names if names.count(n) > 1)}"
        if name == "router":
            assert {"costmesh_router_requests", "costmesh_router_upgrades", "costmesh_quality_score"} <= set(names)
            (routed,) = [f for f in families if f.name == "costmesh_router_requests"]
            assert {tuple(sorted(s.labels)) for s in routed.samples if s.name.endswith("_total")} == {("result",)}
        if name == "gateway":
            assert "costmesh_requests" in names


async def test_answered_requests_leave_cost_records(client, records_dir):
    reply = await client.complete(request("What does HTTP 418 mean?", tenant="rec", request_id="req-rec-1"))
    hit = await client.complete(request("What does HTTP 418 mean?", tenant="rec", request_id="req-rec-2"))
    records = {r.request_id: r for r in read_records(records_dir)}
    first, second = records["req-rec-1"], records["req-rec-2"]
    assert first.outcome == "answered" and first.cache == "miss" and first.model == reply.model
    assert first.cost_usd == pytest.approx(reply.cost.total_usd, abs=3e-6)  # the record: exact; the reply: rounded
    assert first.baseline_usd == pytest.approx(reply.baseline_cost_usd, abs=5e-7)
    assert sum(first.savings.values()) == pytest.approx(first.baseline_usd - first.cost_usd)
    assert second.cache == "exact_hit" and hit.cached
    assert second.saving_usd == pytest.approx(hit.saving_usd)
    assert gw.CacheStatus.Name(hit.cache_status) == "CACHE_STATUS_EXACT_HIT"
