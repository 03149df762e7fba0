"""The bench's hop measurements (`gateway.hops`) and the `load` section's counting.

Hops: a real router service on port 0, its tracer provider built as every service builds it
(OTLP/gRPC export from `OTEL_EXPORTER_OTLP_ENDPOINT`), exporting to the bench's receiver;
the spans of one routed call (a gate failure, then an upgrade) come back grouped per hop.
Load: the two phases against a scripted gateway client; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import grpc
import pytest

from costmesh.api.common.v1 import common_pb2
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.convert import cost_to_pb, usage_to_pb
from costmesh.domain import Usage
from costmesh.observability.tracing import build_tracer_provider
from costmesh.pricing import cost_of
from costmesh.rpc.server import start_service
from costmesh.server_settings import ServerSettings
from costmesh.services.router.service import SPEC as ROUTER
from costmesh.tooling.bench import hops, load

CATALOG = load_catalog()
USAGE = Usage(input_tokens=40, output_tokens=10)
ANSWER = "Paris is the capital of France, on the Seine."


class Providers(provider_pb2_grpc.ProviderServiceServicer):
    """The first call answers nothing (the gate fails it), every later one answers well."""

    def __init__(self):
        self.calls = 0

    async def Generate(self, request, context):  # noqa: N802
        self.calls += 1
        spec = CATALOG.model(request.model)
        return provider_pb2.GenerateResponse(
            text="" if self.calls == 1 else ANSWER, model=request.model, provider=spec.provider,
            usage=usage_to_pb(USAGE), cost=cost_to_pb(cost_of(spec, USAGE)), finish_reason="stop",
        )


async def test_receiver_groups_the_spans_of_a_real_routed_call(monkeypatch):
    fake = Providers()
    providers = grpc.aio.server()
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(fake, providers)
    providers_port = providers.add_insecure_port("127.0.0.1:0")
    await providers.start()
    async with hops.Receiver() as receiver:
        # The exporter reads its endpoint from the process environment, as in a service.
        for name, value in hops.exporter_env(receiver.endpoint).items():
            monkeypatch.setenv(name, value)
        env = Env({**os.environ, "COSTMESH_MESH_AUTH": "off", "COSTMESH_PROVIDERS_ADDR": f"127.0.0.1:{providers_port}",
                   "COSTMESH_ROUTER_GATE": "heuristic", "COSTMESH_LOG_LEVEL": "warning"})
        tracer_provider = build_tracer_provider("router", ServerSettings.load(env))
        router = await start_service(ROUTER, env, tracer_provider=tracer_provider, port=0)
        try:
            async with grpc.aio.insecure_channel(router.address) as channel:
                question = common_pb2.Message(role=common_pb2.ROLE_USER,
                                              content=[common_pb2.ContentPart(text="What is the capital of France?")])
                response = await router_pb2_grpc.RouterServiceStub(channel).Execute(
                    router_pb2.ExecuteRequest(messages=[question], tenant_id="t1"), timeout=10)
            assert response.text == ANSWER and len(response.attempts) == 2
            # Off the event loop: the receiver answers the export on it.
            await asyncio.to_thread(tracer_provider.force_flush)
            await receiver.servicer.quiet(quiet_s=0.3)
        finally:
            await router.stop(0)
            await asyncio.to_thread(tracer_provider.shutdown)
            await providers.stop(0)
        spans = receiver.servicer.take()

    assert {s.service for s in spans} == {"router"}
    grouped = hops.group_spans(spans, skip=hops.not_request_path)
    assert grouped["router/RouterService/Execute"]["count"] == 1
    assert grouped["router/ProviderService/Generate (client)"]["count"] == 2
    assert grouped["router/router.attempt"]["count"] == 2
    assert grouped["router/router.gate"]["count"] == 2
    for figures in grouped.values():
        assert 0 <= figures["p50_ms"] <= figures["p99_ms"]
    assert list(grouped)[0] == "router/ProviderService/Generate (client)"  # sorted within the hop
    assert not any("grpc.health" in key for key in grouped)
    table = hops.table({"bypassed": {"spans": grouped, "cpu_ms_per_request": {"router": 1.0, "mesh_total": 1.0}}})
    assert "router/router.gate" in table and "mesh_total" in table


def test_cpu_of_a_process_tree():
    pid = os.getpid()
    before = hops.process_cpu_s({"me": pid})
    sum(i * i for i in range(200_000))  # some CPU
    after = hops.process_cpu_s({"me": pid})
    assert after["me"] >= before["me"] > 0
    meter = hops.CpuMeter({"me": pid})
    snapshot = meter.snapshot()
    per, context = meter.per_request(snapshot, 10)
    assert per.keys() == {"me", "mesh_total"} and per["me"] >= 0
    assert context.keys() == {"bench_client", "machine_busy", "machine_capacity"}
    per = hops.cpu_ms_per_request({"a": 1.0, "simulator": 1.0}, {"a": 1.5, "simulator": 3.0}, 100)
    assert per == {"a": 5.0, "simulator": 20.0, "mesh_total": 5.0}


def test_span_keys():
    span = hops.ReceivedSpan("cache", "/costmesh.cache.v1.CacheService/Lookup", 2, 1.0, b"")
    assert hops.span_key(span) == "cache/CacheService/Lookup"
    client = hops.ReceivedSpan("gateway", "/costmesh.cache.v1.CacheService/Lookup", hops.SPAN_KIND_CLIENT, 1.0, b"")
    assert hops.span_key(client) == "gateway/CacheService/Lookup (client)"
    assert hops.span_key(hops.ReceivedSpan("cache", "cache.embed", 1, 1.0, b"")) == "cache/cache.embed"


class ScriptedGateway:
    """A gateway client: a question is a miss the first time its tenant asks it, an exact hit
    after, unless its store was dropped (every 4th) or failed (every 7th); questions holding
    "broken" fail with UNAVAILABLE. Counters as GetStats reports them."""

    def __init__(self):
        self.stored: set[tuple[str, str]] = set()
        self.stats_now = dict.fromkeys(load.COUNTERS, 0)
        self.misses = 0
        self.calls = 0

    async def complete(self, request, timeout):
        self.calls += 1
        await asyncio.sleep(0.001)
        prompt = request.messages[-1].content[0].text
        if "broken" in prompt:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
        key = (request.tenant_id, prompt)
        if key in self.stored:
            self.stats_now["exact_hits"] += 1
            return gw.CompleteResponse(cache_status=gw.CACHE_STATUS_EXACT_HIT, cached=True)
        self.misses += 1
        if self.misses % 4 == 0:
            self.stats_now["cache_stores_dropped"] += 1
        elif self.misses % 7 == 0:
            self.stats_now["cache_stores_failed"] += 1
        else:
            self.stored.add(key)
            self.stats_now["cache_stores"] += 1
        if self.misses % 5 == 0:  # the lookup timed out: answered uncached, stored all the same
            self.stats_now["cache_lookups_timed_out"] += 1
            return gw.CompleteResponse(cache_status=gw.CACHE_STATUS_UNAVAILABLE)
        return gw.CompleteResponse(cache_status=gw.CACHE_STATUS_MISS)

    async def stats(self):
        return SimpleNamespace(**self.stats_now)  # fields the stubs may lack read the same way


async def test_load_phases_count_errors_timeouts_and_lost_stores():
    client = ScriptedGateway()
    prompts = [f"question {i}" for i in range(40)] + ["broken question"]
    result = await load.run_phases(client, prompts, ["t0", "t1"], phase_s=0.3, concurrency=4, drain_s=0.1)

    # Miss phase: every question new, so every answer a miss (or uncached after a lookup timeout).
    first = result["miss_phase_cache"]["miss"] + result["miss_phase_cache"]["unavailable"]
    assert result["miss_phase_cache"] == {"miss": first - first // 5, "unavailable": first // 5}
    phase = result["phases"]["miss"]
    assert phase["cache_lookups_timed_out"] == first // 5
    assert (phase["cache_stores_dropped"], phase["cache_stores_failed"]) == (first // 4, first // 7 - first // 28)
    assert result["miss_requests"] == first + result["miss_errors"]
    assert result["miss_errors"] >= 1  # the broken question is asked in the first round
    assert result["hit_errors"] == 0  # and never again: it was never answered
    assert result["errors"] == result["miss_errors"] == result["error_codes"]["UNAVAILABLE"]
    # Hit phase: the misses asked again; stored ones hit, lost ones miss again (and are stored then).
    assert result["hit_phase_cache"].get("exact_hit", 0) > 0
    again = result["hit_phase_cache"].get("miss", 0) + result["hit_phase_cache"].get("unavailable", 0)
    assert again == client.misses - first == result["hit_phase_uncached"]
    assert result["hit_requests"] == sum(result["hit_phase_cache"].values())
    # Totals over both phases, from the gateway's counters.
    everything = client.misses
    dropped, failed = everything // 4, everything // 7 - everything // 28
    assert result["lookups_timed_out"] == everything // 5
    assert (result["stores_dropped"], result["stores_failed"]) == (dropped, failed)
    assert result["answers_not_stored"] == dropped + failed
    assert result["stores"] == everything - dropped - failed
    assert result["prompt_rounds"] >= 1
    assert result["miss_p99_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
    assert "cache misses" in load.table({**result, "concurrency": 4, "phase_s": 0.3, "distinct_prompts": 41})


async def test_load_miss_phase_ends_when_every_question_was_asked():
    client = ScriptedGateway()
    result = await load.run_phases(client, ["a", "b", "c"], ["t0", "t1"], phase_s=1.0, concurrency=2, drain_s=0.1)
    assert result["miss_prompts_exhausted"] is True
    assert result["miss_requests"] == 6 and result["prompt_rounds"] == 2
    assert result["phases"]["miss"]["cache_stores_dropped"] == 1  # the 4th miss
    assert result["answers_not_stored"] == result["stores_dropped"] + result["stores_failed"]


@pytest.mark.parametrize("missing", [load.missing_stats_fields()])
def test_missing_stats_fields_are_named(missing):
    assert set(missing) <= set(load.COUNTERS)
