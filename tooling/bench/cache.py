"""Section `cache`: hit latency at the gateway, micro-batching throughput, Redis bytes per entry.

- Exact and semantic hits through the whole mesh (processes, simulator upstream) at
  concurrency 1, with the same run's misses (a provider call through the simulator) as baseline.
- Semantic lookups per second at concurrency 32 against an in-process cache service, with
  micro-batching of the embedder and of the verifier's cross-encoder on and off (the same
  embedding model object, the same stored entries, the
  same torch thread cap: COSTMESH_TORCH_THREADS as the service reads it). Both modes keep the
  candidates' encodings (the verifier's LRU) and encode each query once; the queries repeat,
  but a query's encoding is never cached, so every lookup runs the model. Each model alone
  (the embedder, and the verifier's cross-encoder) at one item per call vs 32 per call is
  reported too: between them lies the bound on batching's gain.
- Redis memory per entry after storing 10,000 entries (2,000 with --quick), from the cache's
  own stats and from Redis's used_memory before and after.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid

import grpc
import numpy as np
import redis.asyncio as aioredis

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.cache.v1 import cache_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.config import Env
from costmesh.tooling.bench.timing import percentile_ms, sequential, throughput
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request
from costmesh.tooling.verification.traps import generate

MAX_TOKENS = 128


def _paraphrases(n: int) -> list[tuple[str, str]]:
    rows = [r for split in ("test", "calibration", "train") for r in generate(split) if r["duplicate"]]
    seen, out = set(), []
    for r in rows:
        if r["a"] not in seen:
            seen.add(r["a"])
            out.append((r["a"], r["b"]))
    return out[:n]


async def _gateway(address: str, api_key: str, n: int) -> dict:
    pairs = _paraphrases(n * 3)
    async with GatewayClient(address, api_key=api_key) as client:
        async def ask(prompt: str) -> gw.CompleteResponse:
            return await client.complete(build_request(prompt, max_tokens=MAX_TOKENS))

        misses, stored = [], []
        for a, _ in pairs:  # first ask: a provider call, then the store
            started = time.perf_counter()
            reply = await ask(a)
            if reply.cache_status == gw.CACHE_STATUS_MISS:
                misses.append(time.perf_counter() - started)
                stored.append(a)
        kinds = {}
        for _, b in pairs:  # which paraphrases the verifier serves (a miss is stored, a hit stores nothing)
            kinds[b] = (await ask(b)).cache_status
        # The paraphrases stored above can push an earlier one's question out of its nearest
        # candidates: the timed set is the paraphrases still served once every store is done.
        hits = [b for b in kinds if kinds[b] == gw.CACHE_STATUS_SEMANTIC_HIT
                and (await ask(b)).cache_status == gw.CACHE_STATUS_SEMANTIC_HIT][:n]
        if not hits or not stored:
            raise RuntimeError(f"no semantic hit ({len(hits)}) or nothing stored ({len(stored)}): "
                               "the cache does not work")
        exact = stored[:n]

        async def exact_call(i: int) -> None:
            reply = await ask(exact[i % len(exact)])
            assert reply.cache_status == gw.CACHE_STATUS_EXACT_HIT, reply.cache_status

        async def semantic_call(i: int) -> None:
            reply = await ask(hits[i % len(hits)])
            assert reply.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT, reply.cache_status

        exact_s = await sequential(exact_call, n)
        semantic_s = await sequential(semantic_call, n)
    return {
        "exact_hit_p50_ms": percentile_ms(exact_s, 50), "exact_hit_p99_ms": percentile_ms(exact_s, 99),
        "semantic_hit_p50_ms": percentile_ms(semantic_s, 50), "semantic_hit_p99_ms": percentile_ms(semantic_s, 99),
        "miss_p50_ms": percentile_ms(misses, 50), "miss_p99_ms": percentile_ms(misses, 99),
        "paraphrases_served": sum(k == gw.CACHE_STATUS_SEMANTIC_HIT for k in kinds.values()),
        "paraphrases_asked": len(kinds),
    }


def _rates(run, items: list, threads: int, rounds: int = 2) -> tuple[float, float]:
    """Items per second of `run` alone (a model), one item per call vs 32 per call. Their ratio
    bounds what micro-batching can gain for lookups whose time is that model's."""
    from costmesh.model_files import set_torch_threads

    set_torch_threads(threads)  # this worker thread runs the model as the service's would
    elapsed = {1: 0.0, 32: 0.0}
    for _ in range(rounds):  # alternated, like the lookups
        for size in elapsed:
            started = time.perf_counter()
            for i in range(0, len(items), size):
                run(items[i:i + size])
            elapsed[size] += time.perf_counter() - started
    single, batch = (len(items) * rounds / elapsed[size] for size in (1, 32))
    return single, batch


def _cross_encoder(env: Env):
    """The cross-encoder the service's verifier reads pairs with, if it has one."""
    from costmesh.services.cache.config import CacheConfig

    config = CacheConfig.from_env(env)
    if config.verifier != "learned":
        return None
    from costmesh.model_files import model_backend, torch_threads
    from costmesh.verification.artifact import DEFAULT_ARTIFACT, VerifierArtifact
    from costmesh.verification.cross_encoder import load_cross_encoder

    artifact = VerifierArtifact.load(config.verifier_artifact or DEFAULT_ARTIFACT)
    if artifact.cross_encoder is None:
        return None
    return load_cross_encoder(artifact.cross_encoder, model_backend(env), torch_threads(env) or 1,
                              int8=artifact.cross_int8)


def _msgs(text: str) -> list[common.Message]:
    return [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=text)])]


async def _throughput(redis_url: str, n: int) -> dict:
    from costmesh.embeddings import Embedder
    from costmesh.model_files import torch_threads
    from costmesh.rpc.server import ServiceSpec, start_service
    from costmesh.services.cache.service import make_mount

    threads = torch_threads(Env())  # as the service would run (COSTMESH_TORCH_THREADS); process-wide: both modes
    batched = await asyncio.to_thread(Embedder, threads=threads)
    unbatched = Embedder(model=batched._model, batching=False, warmup=False, threads=threads)
    prefix = f"costmesh-bench-{uuid.uuid4().hex[:8]}"
    settings = {k: v for k, v in os.environ.items() if k.startswith("COSTMESH_CACHE_")}  # e.g. the verifier artifact
    # COSTMESH_MESH_AUTH=off: private instances on loopback ports, called by this bench alone
    env = Env({**settings, "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "error", "COSTMESH_CACHE_INDEX_PREFIX": prefix,
               "COSTMESH_CACHE_REDIS_TIMEOUT_MS": "5000", "COSTMESH_MESH_AUTH": "off"})
    pairs = _paraphrases(64)
    scope = pb.Scope(tenant_id="bench", model_policy="auto")
    embedders = {"batched": batched, "unbatched": unbatched}
    out: dict = {}
    services, channels, stubs = [], [], {}
    index_name = ""
    rounds = 4  # alternate the two, so a change of load on a shared machine hits both alike
    try:
        for name, embedder in embedders.items():  # two services over the same index and entries
            service = await start_service(ServiceSpec("cache", 0, make_mount(embedder)), env, port=0)
            services.append(service)
            channels.append(grpc.aio.insecure_channel(service.address))
            stubs[name] = cache_pb2_grpc.CacheServiceStub(channels[-1])
        index_name = (await stubs["batched"].GetStats(pb.GetStatsRequest())).index_name
        for a, _ in pairs:
            await stubs["batched"].Store(pb.StoreRequest(scope=scope, messages=_msgs(a), text="answer", model="bench",
                                                         finish_reason="stop", quality_passed=True))

        def caller(name: str):
            async def call(i: int) -> None:
                await stubs[name].Lookup(pb.LookupRequest(scope=scope, messages=_msgs(pairs[i % len(pairs)][1])))
            return call

        elapsed = {name: 0.0 for name in embedders}
        counted = {name: (0, 0) for name in embedders}
        for name in embedders:
            await throughput(caller(name), len(pairs), 32)  # warm-up: every entry seen once
        per_round = max(32, n // rounds)
        for _ in range(rounds):
            for name, embedder in embedders.items():
                passes, texts = embedder.batches, embedder.texts_embedded
                elapsed[name] += per_round / await throughput(caller(name), per_round, 32)
                done = counted[name]
                counted[name] = (done[0] + embedder.batches - passes, done[1] + embedder.texts_embedded - texts)
        for name in embedders:
            out[f"lookups_per_s_{name}"] = per_round * rounds / elapsed[name]
            out[f"forward_passes_{name}"] = counted[name][0]
            out[f"texts_per_pass_{name}"] = counted[name][1] / max(1, counted[name][0])
            out[f"semantic_hits_{name}"] = (await stubs[name].GetStats(pb.GetStatsRequest())).semantic_hits
        single, batch = await asyncio.to_thread(_rates, batched.encode_full, [b for _, b in pairs], threads)
        out.update(model_texts_per_s_single=single, model_texts_per_s_batch32=batch, model_batch_speedup=batch / single)
        cross = await asyncio.to_thread(_cross_encoder, env)
        if cross is not None:
            single, batch = await asyncio.to_thread(_rates, cross.logits, [(b, a) for a, b in pairs], threads)
            out.update(cross_pairs_per_s_single=single, cross_pairs_per_s_batch32=batch,
                       cross_batch_speedup=batch / single)
    finally:
        for channel in channels:
            await channel.close()
        for service in services:
            await service.stop(0.5)
        await batched.aclose()
        await unbatched.aclose()
        if index_name:
            client = aioredis.from_url(redis_url)
            await client.execute_command("FT.DROPINDEX", index_name, "DD")
            await client.aclose()
    out["batching_speedup"] = out["lookups_per_s_batched"] / out["lookups_per_s_unbatched"]
    out["torch_threads"] = threads
    return out


async def _memory(redis_url: str, entries: int) -> dict:
    from costmesh.domain import Message, Role, Sampling
    from costmesh.services.cache.config import CacheConfig
    from costmesh.services.cache.core import CacheCore
    from costmesh.services.cache.records import StoreRequest
    from costmesh.services.cache.scope import Scope
    from costmesh.services.cache.service import redis_client
    from costmesh.services.cache.verifier import CosineVerifier

    class NoModel:  # stores carry their vectors: nothing is embedded
        model_id, dims = "all-MiniLM-L6-v2", 384

    config = CacheConfig(index_prefix=f"costmesh-mem-{uuid.uuid4().hex[:8]}", redis_timeout_ms=5000,
                         max_inflight_stores=32)  # as many as the bench keeps in flight
    core = CacheCore(client=redis_client(redis_url, config), redis_url=redis_url, embedder=NoModel(),
                     verifier=CosineVerifier(0.9), config=config)
    await core.start()
    raw = aioredis.from_url(redis_url)
    before = int((await raw.info("memory"))["used_memory"])
    rng = np.random.default_rng(0)
    questions = [r["a"] for split in ("train", "calibration", "test") for r in generate(split)]
    sem = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        vector = rng.standard_normal(384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        async with sem:
            result = await core.store(StoreRequest(
                scope=Scope(f"tenant-{i % 50}"),
                messages=(Message.of(Role.USER, f"{questions[i % len(questions)]} #{i}"),),
                sampling=Sampling(temperature=0.0), text="A typical cached answer of a few sentences. " * 6,
                model="gpt-5-mini", tags=(f"product:{i % 100}",), embedding=tuple(vector.tolist()),
                embedding_model=NoModel.model_id,
                finish_reason="stop", quality_passed=True))
            assert result.stored, result.reason

    await asyncio.gather(*(put(i) for i in range(entries)))
    after = int((await raw.info("memory"))["used_memory"])
    stats = await core.stats()
    await raw.execute_command("FT.DROPINDEX", core.index_name, "DD")
    await raw.aclose()
    await core.aclose()
    return {"entries": stats.entries, "bytes_per_entry": stats.bytes_per_entry,
            "used_memory_delta_per_entry": (after - before) / entries}


def run(quick: bool = False) -> dict:
    n_latency, n_lookups, n_entries = (20, 128, 2000) if quick else (100, 640, 10_000)
    from costmesh.tooling.redis_embedded import EmbeddedRedis

    result: dict = {}
    with EmbeddedRedis() as redis:
        result.update(asyncio.run(_throughput(redis.url, n_lookups)))
        result.update(asyncio.run(_memory(redis.url, n_entries)))
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-") as run_dir, start_mesh(
        run_dir, {"COSTMESH_LOG_LEVEL": "warning"}
    ) as mesh:
        result.update(asyncio.run(_gateway(mesh.gateway, mesh.api_key("bench"), n_latency)))
    return result


def table(result: dict) -> str:
    r = result
    return "\n".join([
        "cache",
        f"  gateway, concurrency 1 (ms)   {'p50':>8}{'p99':>8}",
        f"  {'exact hit':<30}{r['exact_hit_p50_ms']:>8.2f}{r['exact_hit_p99_ms']:>8.2f}",
        f"  {'semantic hit':<30}{r['semantic_hit_p50_ms']:>8.2f}{r['semantic_hit_p99_ms']:>8.2f}",
        f"  {'miss (provider call)':<30}{r['miss_p50_ms']:>8.2f}{r['miss_p99_ms']:>8.2f}",
        f"  semantic lookups/s at c32: batched {r['lookups_per_s_batched']:.1f}, unbatched "
        f"{r['lookups_per_s_unbatched']:.1f} ({r['batching_speedup']:.2f}x; texts per embedder batch "
        f"{r['texts_per_pass_batched']:.1f} vs {r['texts_per_pass_unbatched']:.1f}; torch threads "
        f"{r['torch_threads']})",
        f"  embedding model alone: {r['model_texts_per_s_single']:.1f} texts/s one per call, "
        f"{r['model_texts_per_s_batch32']:.1f} in calls of 32 ({r['model_batch_speedup']:.2f}x)",
        *([f"  verifier's cross-encoder alone: {r['cross_pairs_per_s_single']:.1f} pairs/s one per call, "
           f"{r['cross_pairs_per_s_batch32']:.1f} in calls of 32 ({r['cross_batch_speedup']:.2f}x)"]
          if "cross_batch_speedup" in r else []),
        f"  Redis bytes per entry ({r['entries']} entries): {r['bytes_per_entry']:.0f} "
        f"(used_memory delta {r['used_memory_delta_per_entry']:.0f})",
    ])
