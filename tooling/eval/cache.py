"""`costmesh eval cache --pairs FILE`: the cache service on a real Redis, pair by pair.

For each pair, `a` is stored (with an answer of its own) and `b` looked up, each pair under a
tenant of its own, so a lookup can only ever meet its own pair's entry: a hit on a
`duplicate: false` pair is a wrong answer served, a miss on a `duplicate: true` pair a missed
saving (`../shared/data/README.md`). The same run measures plain cosine thresholds as
baselines: redisvl's default (distance 0.1, i.e. similarity 0.9) and GPTCache's (similarity
0.8), each a cache service of its own over the same index and entries. Starts an embedded
Redis when REDIS_URL is not set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import grpc

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.cache.v1 import cache_pb2_grpc
from costmesh.config import Env
from costmesh.errors import InvalidRequest
from costmesh.tooling.datasets import Pair, load_pairs
from costmesh.tooling.eval.cache_common import (
    BASELINES,
    HITS,
    SAMPLING,
    Tally,
    _drop_index,
    _messages,
    _progress_bar,
    run_header,
)
from costmesh.tooling.eval.packaged import pairs_path

__all__ = ["BASELINES", "HITS", "SAMPLING", "Tally", "evaluate", "format_table"]



def _scope(tenant: str) -> pb.Scope:
    return pb.Scope(tenant_id=tenant, model_policy="auto")


async def _lookup(stub, tenant: str, text: str) -> tuple[bool, float, bool]:
    started = time.perf_counter()
    reply = await stub.Lookup(pb.LookupRequest(scope=_scope(tenant), messages=_messages(text), sampling=SAMPLING))
    return reply.kind in HITS, time.perf_counter() - started, reply.kind == pb.HIT_KIND_UNAVAILABLE


async def evaluate(pairs: list[Pair], redis_url: str, *, concurrency: int = 8, env: dict | None = None,
                   progress: bool = True, embedder=None) -> dict:
    """Store each `a`, look each `b` up, through real cache services; the figures as a dict."""
    from costmesh.embeddings import Embedder
    from costmesh.rpc.server import ServiceSpec, start_service
    from costmesh.services.cache.service import build_embedder, make_mount

    run_id = uuid.uuid4().hex[:10]
    # COSTMESH_MESH_AUTH=off: private instances on loopback ports, called by this evaluation alone
    base = {**os.environ, **(env or {}), "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "error",
            "COSTMESH_CACHE_INDEX_PREFIX": f"costmesh-eval-{run_id}", "COSTMESH_CACHE_REDIS_TIMEOUT_MS": "5000",
            "COSTMESH_MESH_AUTH": "off"}
    base.pop("COSTMESH_METRICS_PORT", None)
    own_embedder = embedder is None
    if own_embedder:
        embedder = await asyncio.to_thread(build_embedder, Env(base))
    assert isinstance(embedder, Embedder) or hasattr(embedder, "embed")
    envs = {"costmesh": base}
    for name, similarity in BASELINES.items():
        envs[name] = {**base, "COSTMESH_CACHE_VERIFIER": "cosine", "COSTMESH_CACHE_MIN_SIMILARITY": str(similarity)}
    services, channels, stubs = {}, [], {}
    stats = None
    try:
        for name, values in envs.items():
            services[name] = await start_service(ServiceSpec("cache", 0, make_mount(embedder)), Env(values), port=0)
            channel = grpc.aio.insecure_channel(services[name].address)
            channels.append(channel)
            stubs[name] = cache_pb2_grpc.CacheServiceStub(channel)
        stats = await stubs["costmesh"].GetStats(pb.GetStatsRequest())
        tallies = {name: Tally() for name in envs}
        bar = _progress_bar(len(pairs), progress)
        semaphore = asyncio.Semaphore(concurrency)
        failed: list[str] = []

        async def one(index: int, pair: Pair) -> None:
            tenant = f"eval-{run_id}-{index}"
            async with semaphore:
                try:
                    stored = await stubs["costmesh"].Store(pb.StoreRequest(
                        scope=_scope(tenant), messages=_messages(pair.a), sampling=SAMPLING,
                        text=f"answer {index}", model="eval", finish_reason="stop", quality_passed=True))
                    results = await asyncio.gather(*(_lookup(stubs[name], tenant, pair.b) for name in envs))
                except grpc.aio.AioRpcError as exc:  # one bad pair is a counted error, not a failed run
                    failed.append(f"pair {index}: {exc.code().name}: {exc.details()}")
                    stored, results = None, [(False, None, True)] * len(envs)
                for name, (hit, latency, unavailable) in zip(envs, results):
                    tallies[name].add(hit, pair.duplicate, latency, unavailable or not (stored and stored.stored))
                bar.update(1)

        await asyncio.gather(*(one(i, p) for i, p in enumerate(pairs)))
        bar.close()
    finally:
        if stats is not None:  # the run's entries go, whether it finished or not
            await _drop_index(redis_url, stats.index_name)
        for channel in channels:
            await channel.close()
        for service in services.values():
            await service.stop(0.5)
        if own_embedder:
            await embedder.aclose()
    result = tallies["costmesh"].figures()
    result.update(run_header(pairs, concurrency, stats, failed))
    result["baselines"] = {name: tallies[name].figures() for name in BASELINES}
    return result


def format_table(result: dict) -> str:
    op = result["operating_point"]
    lines = [
        f"{result['pairs']} pairs ({result['duplicates']} duplicates), concurrency {result['concurrency']}; "
        f"verifier {result['verifier']}"
        + (f" at false-hit bound {op['max_false_hit_rate']} (threshold {op['threshold']})" if op["threshold"] else ""),
        f"{'':26} {'precision':>9} {'recall':>7} {'false-hit':>9} {'F1':>6} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    rows = [("costmesh (verified)", result)] + list(result["baselines"].items())
    for name, r in rows:
        lines.append(f"{name:26} {r['precision']:9.3f} {r['recall']:7.3f} {r['false_hit_rate']:9.3f} "
                     f"{r['f1']:6.3f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f}")
    if result["errors"]:
        lines.append(f"pairs not measured (cache errors), left out of the figures: {result['errors']}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", required=True,
                        help="pairs file (JSON Lines, optionally .gz): a, b, duplicate; or `assistant`, the "
                             "hand-written set that ships with costmesh (costmesh.tooling.eval.packaged)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on stdout")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N pairs only")
    parser.add_argument("--concurrency", type=int, default=8, help="pairs in flight at once")
    parser.add_argument("--online", action="store_true",
                        help="replay the pairs as one tenant's live traffic in a random order, with shadow checks "
                             "judged by the file's labels (the loop; see costmesh.tooling.eval.cache_online)")
    parser.add_argument("--shadow-rate", type=float, default=0.05, help="--online: the share of semantic hits checked")
    parser.add_argument("--seed", type=int, default=0, help="--online: the replay's order")
    parser.add_argument("--shadow-model", default=None,
                        help="--online: the model a check's call is priced on (default: the catalog's premium model)")
    parser.add_argument("--answer-tokens", type=int, default=200,
                        help="--online: a check's answer tokens, for its price")
    parser.add_argument("--curve", action="store_true",
                        help="the packaged verifier's operating curve on the pairs instead (no Redis; see "
                             "costmesh.tooling.eval.cache_curve): what any threshold can reach on them")
    parser.add_argument("--max-false-hit-rate", type=float, default=0.05,
                        help="--curve: report the most recall at a false-hit rate at or under this")
    parser.add_argument("--min-recall", type=float, default=0.40,
                        help="--curve: report the least false-hit rate at a recall of at least this")


async def _run(args: argparse.Namespace) -> dict:
    pairs = load_pairs(pairs_path(args.pairs), args.limit)
    if not pairs:
        raise InvalidRequest(f"pairs: {args.pairs} holds no pairs")
    url = os.environ.get("REDIS_URL")
    if url:
        return await _evaluate(args, pairs, url)
    from costmesh.tooling.redis_embedded import EmbeddedRedis

    with EmbeddedRedis() as redis:
        return await _evaluate(args, pairs, redis.url)


async def _evaluate(args: argparse.Namespace, pairs: list[Pair], url: str) -> dict:
    if not getattr(args, "online", False):
        return await evaluate(pairs, url, concurrency=args.concurrency)
    from costmesh.tooling.eval.cache_online import evaluate_online

    return await evaluate_online(pairs, url, shadow_rate=args.shadow_rate, concurrency=args.concurrency,
                                 seed=args.seed, shadow_model=args.shadow_model, answer_tokens=args.answer_tokens)


def _run_curve(args: argparse.Namespace) -> int:
    import numpy as np

    from costmesh.tooling.datasets import read_jsonl
    from costmesh.tooling.eval.cache_curve import curve, format_curve, score_pairs

    path = pairs_path(args.pairs)
    pairs = load_pairs(path, args.limit)
    if not pairs:
        raise InvalidRequest(f"pairs: {args.pairs} holds no pairs")
    kinds = [str(row.get("kind", "")) for row, _ in zip(read_jsonl(path), pairs)]
    scores, calibrated = asyncio.run(score_pairs(pairs))
    result = curve(scores, np.array([p.duplicate for p in pairs]), calibrated,
                   max_false_hit_rate=args.max_false_hit_rate, min_recall=args.min_recall,
                   kinds=kinds if all(kinds) else None)
    print(json.dumps(result) if args.json else format_curve(result))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit <= 0:
        raise InvalidRequest("limit: must be positive")
    if args.concurrency <= 0:
        raise InvalidRequest("concurrency: must be positive")
    if getattr(args, "online", False) and not 0 < args.shadow_rate <= 1:
        raise InvalidRequest("shadow-rate: must be in (0, 1]")
    if getattr(args, "curve", False):
        return _run_curve(args)
    result = asyncio.run(_run(args))
    if result.get("online"):
        from costmesh.tooling.eval.cache_online import format_table as online_table

        print(json.dumps(result) if args.json else online_table(result))
        return 0
    print(json.dumps(result) if args.json else format_table(result))
    return 0
