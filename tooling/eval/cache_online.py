"""`costmesh eval cache --pairs FILE --online --shadow-rate R`: the shadow-check loop replayed.

The pairs become live traffic of one tenant that consented to shadow checks at rate R, in a random
order (`--seed`): for each pair, `a` is stored (with an answer of its own) and `b` looked up, each
pair in a session of its own (session-scoped entries), so a lookup can only meet its own pair's
entry while every verdict counts toward the one tenant's live false-hit estimate. A semantic hit
the cache draws for a check is judged by an oracle that reads the file's label (`JudgeShadow` with
the caller's verdict: a duplicate is SAME, else DIFFERENT), so this measures the loop, not a
judge; the cache moves the tenant's threshold as it would in production (the operator's
COSTMESH_CACHE_SHADOW_* settings; the threshold copy refreshed every 0.2 s).

Measured in the same run, over the same index and order: the cache without the loop (the tenant
not consenting: its threshold never moves) and the cosine baselines. `final_*` are the figures
over the second half of the replay; `shadow_share` the share of lookups checked; `shadow_cost_usd`
what the checks' model calls would cost: each the pair's question and `--answer-tokens` of answer
on `--shadow-model` (default the catalog's premium model, an upper bound: a real check is routed
as a miss would be), the oracle judge free.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid

import grpc

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.cache.v1 import cache_pb2_grpc
from costmesh.config import Env
from costmesh.tooling.datasets import Pair
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

LOOP, STATIC = "costmesh", "costmesh_without_loop"


def _scope(tenant: str, session: str) -> pb.Scope:
    return pb.Scope(tenant_id=tenant, model_policy="auto", session_id=session, session_scoped=True)


def _check_cost(model: str | None, answer_tokens: int):
    """question -> what one check's model call costs (USD)."""
    from costmesh.catalog import load_catalog
    from costmesh.domain import Usage
    from costmesh.pricing import cost_of

    catalog = load_catalog(os.environ.get("COSTMESH_CATALOG"))
    spec = catalog.model(model) if model else catalog.premium
    try:
        from costmesh.tokens import count_tokens
    except ImportError:  # without the tokenizer: words
        def count_tokens(text: str) -> int:
            return len(text.split())
    return spec.id, lambda question: cost_of(spec, Usage(input_tokens=count_tokens(question) + 8,
                                                          output_tokens=answer_tokens)).total_usd


async def evaluate_online(pairs: list[Pair], redis_url: str, *, shadow_rate: float, concurrency: int = 4,
                          seed: int = 0, shadow_model: str | None = None, answer_tokens: int = 200,
                          env: dict | None = None, progress: bool = True, embedder=None) -> dict:
    from costmesh.rpc.server import ServiceSpec, start_service
    from costmesh.services.cache.service import build_embedder, make_mount

    run_id = uuid.uuid4().hex[:10]
    tenant = f"eval-online-{run_id}"
    base = {**os.environ, **(env or {}), "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "error",
            "COSTMESH_CACHE_INDEX_PREFIX": f"costmesh-eval-{run_id}", "COSTMESH_CACHE_REDIS_TIMEOUT_MS": "5000",
            "COSTMESH_MESH_AUTH": "off", "COSTMESH_CACHE_SHADOW_REFRESH_S": "0.2"}
    base.pop("COSTMESH_METRICS_PORT", None)
    base.pop("COSTMESH_CACHE_TENANT_POLICIES", None)
    own_embedder = embedder is None
    if own_embedder:
        embedder = await asyncio.to_thread(build_embedder, Env(base))
    envs = {LOOP: {**base, "COSTMESH_CACHE_TENANT_POLICIES": json.dumps({tenant: {"shadow_rate": shadow_rate}})},
            STATIC: base}
    for name, similarity in BASELINES.items():
        envs[name] = {**base, "COSTMESH_CACHE_VERIFIER": "cosine", "COSTMESH_CACHE_MIN_SIMILARITY": str(similarity)}
    model_id, check_cost = _check_cost(shadow_model, answer_tokens)
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    services, channels, stubs = {}, [], {}
    stats = live = None
    checks = {"checks": 0, "cost_usd": 0.0, "failed": 0}
    trace: list[dict] = []  # the live threshold along the replay
    try:
        for name, values in envs.items():
            services[name] = await start_service(ServiceSpec("cache", 0, make_mount(embedder)), Env(values), port=0)
            channel = grpc.aio.insecure_channel(services[name].address)
            channels.append(channel)
            stubs[name] = cache_pb2_grpc.CacheServiceStub(channel)
        stats = await stubs[LOOP].GetStats(pb.GetStatsRequest())
        whole = {name: Tally() for name in envs}
        final = {name: Tally() for name in envs}
        bar = _progress_bar(len(pairs), progress)
        failed: list[str] = []
        queue = iter(enumerate(order))

        async def lookup(name: str, scope: pb.Scope, text: str) -> pb.LookupResponse:
            return await stubs[name].Lookup(pb.LookupRequest(scope=scope, messages=_messages(text), sampling=SAMPLING))

        async def one(position: int, index: int) -> None:
            pair = pairs[index]
            scope = _scope(tenant, f"pair-{index}")
            try:
                stored = await stubs[LOOP].Store(pb.StoreRequest(
                    scope=scope, messages=_messages(pair.a), sampling=SAMPLING, text=f"answer {index}",
                    model="eval", finish_reason="stop", quality_passed=True))
                replies = await asyncio.gather(*(lookup(name, scope, pair.b) for name in envs))
            except grpc.aio.AioRpcError as exc:
                failed.append(f"pair {index}: {exc.code().name}: {exc.details()}")
                stored, replies = None, [pb.LookupResponse(kind=pb.HIT_KIND_UNAVAILABLE)] * len(envs)
            for name, reply in zip(envs, replies):
                error = reply.kind == pb.HIT_KIND_UNAVAILABLE or not (stored and stored.stored)
                for tally in (whole[name], final[name]) if position >= half else (whole[name],):
                    tally.add(reply.kind in HITS, pair.duplicate, None, error)
            loop_reply = replies[0]
            if loop_reply.kind == pb.HIT_KIND_SEMANTIC and loop_reply.shadow:
                checks["checks"] += 1
                checks["cost_usd"] += check_cost(pair.b)
                verdict = pb.SHADOW_VERDICT_SAME if pair.duplicate else pb.SHADOW_VERDICT_DIFFERENT
                try:  # the oracle judge: the file's label is the verdict
                    judged = await stubs[LOOP].JudgeShadow(pb.JudgeShadowRequest(
                        scope=scope, entry_id=loop_reply.entry_id, messages=_messages(pair.b),
                        served_text=f"answer of {loop_reply.entry_id}", fresh_text=f"answer {index}",
                        verdict=verdict, similarity=loop_reply.similarity))
                    if not trace or judged.live.threshold != trace[-1]["threshold"]:
                        trace.append({"position": position, "threshold": round(judged.live.threshold, 4)})
                except grpc.aio.AioRpcError as exc:
                    checks["failed"] += 1
                    failed.append(f"judge {index}: {exc.code().name}: {exc.details()}")
            bar.update(1)

        async def worker() -> None:
            for position, index in queue:
                await one(position, index)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        bar.close()
        live = (await stubs[LOOP].GetStats(pb.GetStatsRequest(tenant_id=tenant))).live
    finally:
        if stats is not None:
            await _drop_index(redis_url, stats.index_name)
        for channel in channels:
            await channel.close()
        for service in services.values():
            await service.stop(0.5)
        if own_embedder:
            await embedder.aclose()
    result = whole[LOOP].figures()
    result.pop("p50_ms"), result.pop("p99_ms")
    final_loop, final_static = final[LOOP].figures(), final[STATIC].figures()
    measured = sum(whole[LOOP].__dict__[k] for k in ("tp", "fp", "fn", "tn"))
    result.update(run_header(pairs, concurrency, stats, failed))
    result.update({
        "online": True,
        "shadow_rate": shadow_rate,
        "seed": seed,
        "final_pairs": len(order) - half,
        "final_false_hit_rate": final_loop["false_hit_rate"],
        "final_recall": final_loop["recall"],
        "final_precision": final_loop["precision"],
        "shadow_checks": checks["checks"],
        "shadow_share": round(checks["checks"] / measured, 4) if measured else 0.0,
        "shadow_cost_usd": round(checks["cost_usd"], 6),
        "shadow_model": model_id,
        "shadow_answer_tokens": answer_tokens,
        "live": {
            "verdicts": live.total_verdicts, "false_hits": live.total_false_hits,
            "threshold": round(live.threshold, 4), "calibrated_threshold": round(live.calibrated_threshold, 4),
            "threshold_moves": live.threshold_moves, "max_false_hit_rate": round(live.max_false_hit_rate, 4),
            "min_verdicts": live.min_verdicts, "threshold_path": trace[:50],
        },
        "without_loop": {**{k: v for k, v in whole[STATIC].figures().items() if k not in ("p50_ms", "p99_ms")},
                         "final_false_hit_rate": final_static["false_hit_rate"],
                         "final_recall": final_static["recall"], "final_precision": final_static["precision"]},
        "loop_change": {  # the loop's effect over the second half: with it less without it
            "precision": round(final_loop["precision"] - final_static["precision"], 4),
            "recall": round(final_loop["recall"] - final_static["recall"], 4),
            "false_hit_rate": round(final_loop["false_hit_rate"] - final_static["false_hit_rate"], 4),
        },
        "baselines": {name: {k: v for k, v in whole[name].figures().items() if k not in ("p50_ms", "p99_ms")}
                      for name in BASELINES},
    })
    return result


def format_table(result: dict) -> str:
    live, change = result["live"], result["loop_change"]
    return "\n".join([
        f"{result['pairs']} pairs ({result['duplicates']} duplicates) replayed in a random order (seed "
        f"{result['seed']}), shadow rate {result['shadow_rate']}; verifier {result['verifier']}",
        f"{'second half':26} {'precision':>9} {'recall':>7} {'false-hit':>9}",
        f"{'with the loop':26} {result['final_precision']:9.3f} {result['final_recall']:7.3f} "
        f"{result['final_false_hit_rate']:9.3f}",
        f"{'without it':26} {result['without_loop']['final_precision']:9.3f} "
        f"{result['without_loop']['final_recall']:7.3f} {result['without_loop']['final_false_hit_rate']:9.3f}",
        f"loop change: precision {change['precision']:+.4f}, recall {change['recall']:+.4f}, "
        f"false-hit rate {change['false_hit_rate']:+.4f}",
        f"shadow checks {result['shadow_checks']} (share {result['shadow_share']:.3f}), cost "
        f"{result['shadow_cost_usd']:.4f} USD on {result['shadow_model']}; verdicts {live['verdicts']} "
        f"({live['false_hits']} false), threshold {live['calibrated_threshold']} -> {live['threshold']} "
        f"({live['threshold_moves']} moves)",
    ])
