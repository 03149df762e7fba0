"""Section `capacity`: requests per second one replica of each service holds on this machine,
and Redis memory per cached entry, for sizing a deployment.

The whole mesh runs as processes (one replica each) on this machine, the simulator with no
artificial latency, so each figure is CPU-bound. Each service is called directly over gRPC at
a fixed concurrency, the way its callers in the mesh call it, for a fixed number of requests.
The load generator, the simulator and Redis share the same cores, so the figures are a floor
for a replica that has its cores to itself. Redis memory: `used_memory` before and after
storing N new entries through the cache service (vector index included), divided by N.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import grpc
import redis

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import Tier, load_catalog
from costmesh.config import Env
from costmesh.rpc.mesh_auth import mesh_client_interceptors
from costmesh.tooling.bench.timing import throughput
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

CONCURRENCY = 32
MAX_TOKENS = 128
GATEWAY_MAX_TOKENS = 4096
ANSWER = "A cached answer of a typical length. " * 12  # about 100 tokens


def _messages(prompt: str) -> list[common.Message]:
    return [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=prompt)])]


def _prompts(n: int) -> list[str]:
    prompts = [r.prompt for r in load_book(data_dir() / "gsm8k_routing_dev.jsonl.gz", limit=n)]
    prompts += [r.prompt for r in load_book(data_dir() / "mmlu_routing_dev.jsonl.gz", limit=max(0, n - len(prompts)))]
    while len(prompts) < n:  # a small data dir: make the rest distinct
        prompts.append(f"{prompts[len(prompts) % max(1, len(prompts))]} (variant {len(prompts)})")
    return prompts[:n]


async def _measure(mesh, n: int, entries: int) -> dict:
    prompts = _prompts(2 * n + entries + CONCURRENCY)
    sampling = common.SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)
    cheap = load_catalog().tier_models(Tier.SIMPLE)[0].id
    result: dict = {"concurrency": CONCURRENCY, "requests": n, "cpus": os.cpu_count(),
                    "load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    address = {name: p.address for name, p in mesh.processes.items()}
    credentials = mesh_client_interceptors(Env(mesh.env), "bench")  # service tokens, as the mesh's own calls
    misses: dict[int, cache_pb2.LookupResponse] = {}  # each carries the prompt's embedding and its model

    async with grpc.aio.insecure_channel(address["cache"], interceptors=credentials) as ch:
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        scope = cache_pb2.Scope(tenant_id="capacity", model_policy="auto")

        async def lookup_miss(i: int) -> None:
            reply = await stub.Lookup(cache_pb2.LookupRequest(scope=scope, messages=_messages(prompts[i]),
                                                              sampling=sampling), timeout=30)
            misses[i] = reply

        await throughput(lookup_miss, CONCURRENCY, CONCURRENCY)
        result["cache_lookup_miss_rps"] = round(
            await throughput(lambda i: lookup_miss(CONCURRENCY + i), n, CONCURRENCY), 1
        )

        base = CONCURRENCY + n
        # Stores carry the lookup's embedding, as the gateway's do (untimed lookups first).
        await throughput(lambda i: lookup_miss(base + i), entries, CONCURRENCY)
        client = redis.Redis.from_url(mesh.env["REDIS_URL"])
        before = int(client.info("memory")["used_memory"])

        async def store(i: int) -> None:
            await stub.Store(cache_pb2.StoreRequest(
                scope=scope, messages=_messages(prompts[base + i]), sampling=sampling, text=ANSWER, model=cheap,
                usage=common.TokenUsage(input_tokens=60, output_tokens=100), baseline_cost_usd=0.01,
                embedding=misses[base + i].embedding, embedding_model=misses[base + i].embedding_model,
                finish_reason="stop", quality_passed=True), timeout=30)

        result["cache_store_rps"] = round(await throughput(store, entries, CONCURRENCY), 1)
        stats = await stub.GetStats(cache_pb2.GetStatsRequest(), timeout=30)
        after = int(client.info("memory")["used_memory"])
        client.close()
        result["cache_entries"] = int(stats.entries)  # stores the cache accepted
        result["redis_bytes_per_entry"] = round((after - before) / max(1, stats.entries))
        result["cache_reported_bytes_per_entry"] = round(stats.bytes_per_entry)

        async def lookup_hit(i: int) -> None:
            reply = await stub.Lookup(cache_pb2.LookupRequest(
                scope=scope, messages=_messages(prompts[base + i % entries]), sampling=sampling), timeout=30)
            assert reply.kind in (cache_pb2.HIT_KIND_EXACT, cache_pb2.HIT_KIND_SEMANTIC), reply.kind

        result["cache_lookup_hit_rps"] = round(await throughput(lookup_hit, n, CONCURRENCY), 1)

    async with grpc.aio.insecure_channel(address["classifier"], interceptors=credentials) as ch:
        stub = classifier_pb2_grpc.ClassifierServiceStub(ch)

        async def classify(i: int) -> None:
            # As the gateway calls it: with the embedding the cache computed for the prompt.
            await stub.Classify(classifier_pb2.ClassifyRequest(
                messages=_messages(prompts[i % len(misses)]), embedding=misses[i % len(misses)].embedding),
                timeout=30)

        await throughput(classify, CONCURRENCY, CONCURRENCY)
        result["classifier_rps"] = round(await throughput(classify, n, CONCURRENCY), 1)

    async with grpc.aio.insecure_channel(address["providers"], interceptors=credentials) as ch:
        stub = provider_pb2_grpc.ProviderServiceStub(ch)

        async def generate(i: int) -> None:
            await stub.Generate(provider_pb2.GenerateRequest(model=cheap, messages=_messages(prompts[i]),
                                                             sampling=sampling, tenant_id="capacity"), timeout=60)

        await throughput(generate, CONCURRENCY, CONCURRENCY)
        result["providers_rps"] = round(await throughput(generate, n, CONCURRENCY), 1)

    async with grpc.aio.insecure_channel(address["router"], interceptors=credentials) as ch:
        stub = router_pb2_grpc.RouterServiceStub(ch)

        async def execute(i: int) -> None:
            await stub.Execute(router_pb2.ExecuteRequest(messages=_messages(prompts[i]), sampling=sampling,
                                                         tier=common.TIER_SIMPLE, score=0.2, tenant_id="capacity"),
                               timeout=60)

        result["router_rps"] = round(await throughput(execute, n, CONCURRENCY), 1)

    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("capacity")) as client:
        # Room for the whole recorded answer: a truncated answer is not cached.
        async def complete(i: int) -> None:
            await client.complete(build_request(prompts[n + i], tenant="capacity", max_tokens=GATEWAY_MAX_TOKENS))

        async def complete_hit(i: int) -> None:
            reply = await client.complete(build_request(cached[i % len(cached)], tenant="capacity",
                                                        max_tokens=GATEWAY_MAX_TOKENS))
            hits[reply.cached] += 1

        hits = {True: 0, False: 0}

        result["gateway_miss_rps"] = round(await throughput(complete, n, CONCURRENCY), 1)
        # Answers the cache kept (the quality gate and finish reason decide): ask those again.
        cached = []
        for prompt in prompts[n:n + 2 * CONCURRENCY]:
            reply = await client.complete(build_request(prompt, tenant="capacity", max_tokens=GATEWAY_MAX_TOKENS))
            if reply.cached:
                cached.append(prompt)
        result["gateway_cached_prompts"] = len(cached)
        if cached:
            result["gateway_hit_rps"] = round(await throughput(complete_hit, n, CONCURRENCY), 1)
            result["gateway_hit_share"] = round(hits[True] / n, 3)
    return result


def run(quick: bool) -> dict:
    n, entries = (60, 100) if quick else (300, 500)
    env = {"SIM_LATENCY_MS": "0", "SIM_MS_PER_OUTPUT_TOKEN": "0", "COSTMESH_LOG_LEVEL": "warning",
           "COSTMESH_ROUTER_GATE": "heuristic"}
    with tempfile.TemporaryDirectory(prefix="costmesh-capacity-") as run_dir, start_mesh(run_dir, env) as mesh:
        return asyncio.run(_measure(mesh, n, entries))


def table(result: dict) -> str:
    rows = [
        ("classifier   Classify", result["classifier_rps"]),
        ("cache        Lookup, miss (embed + vector search)", result["cache_lookup_miss_rps"]),
        ("cache        Lookup, hit", result["cache_lookup_hit_rps"]),
        ("cache        Store", result["cache_store_rps"]),
        ("providers    Generate (+ simulator)", result["providers_rps"]),
        ("router       Execute (+ providers + simulator)", result["router_rps"]),
        ("gateway      Complete, cache miss (whole mesh)", result["gateway_miss_rps"]),
        (f"gateway      Complete, cache hits ({result.get('gateway_hit_share', 0):.0%} of calls hit)",
         result.get("gateway_hit_rps", float("nan"))),
    ]
    lines = [f"one replica each, {result['cpus']} CPUs shared by every process (load average "
             f"{result['load_average_1m_at_start']} at start), concurrency {result['concurrency']}, "
             f"{result['requests']} requests per figure",
             f"{'service / call':<54}{'requests/s':>12}"]
    lines += [f"{name:<54}{rps:>12.1f}" for name, rps in rows]
    lines.append(f"Redis memory per cached entry: {result['redis_bytes_per_entry']} bytes (used_memory delta over "
                 f"{result['cache_entries']} entries; cache service's own estimate "
                 f"{result['cache_reported_bytes_per_entry']})")
    return "\n".join(lines)
