"""`costmesh eval router --book FILE --online --shadow-rate R`: the routing checks' loop replayed.

The book's rows become live traffic of one tenant that consented to routing checks at rate R, in
a random order (`--seed`). The learned router scores each prompt (the packaged artifact; rows it
was trained on left out unless `--include-trained`); under its threshold plus the tenant's offset
the weak model answers (a cheap tier, the book's weak_score), else the strong one (strong_score).
A share R of the cheap answers is checked by an oracle that reads the book (as good when
weak_score >= strong_score), counted in the gateway's `RoutingLedger` on Redis, which moves the
tenant's offset as it does in production (COSTMESH_ROUTER_QUALITY_TARGET and
COSTMESH_ROUTER_SHADOW_* settings). Simplified: two models (the book's), so no moderate tier and
no answer gate.

Prints the figures over the second half of the replay: `final_quality_retained` (the chosen
answers' scores over all-strong's), `final_premium_share`; the same replay without the loop
(offset 0); `shadow_share` (checks per request) and `shadow_cost_usd` (each check: the premium
model asked the prompt, and the judge, the premium model too, reading the prompt and both answers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid

import numpy as np

from costmesh.tooling.datasets import BookRecord

CHEAP, PREMIUM = "simple", "complex"
JUDGE_OVERHEAD_TOKENS = 150  # the judge prompt's instructions


def _figures(records: list[BookRecord], strong: list[bool]) -> dict:
    weak_scores = np.array([r.weak_score for r in records])
    strong_scores = np.array([r.strong_score for r in records])
    chosen = np.where(np.array(strong, dtype=bool), strong_scores, weak_scores)
    total = float(strong_scores.sum())
    return {"quality_retained": round(float(chosen.sum()) / total, 4) if total else 1.0,
            "premium_share": round(float(np.mean(strong)), 4) if strong else 0.0}


async def evaluate_online(records: list[BookRecord], scores: np.ndarray, threshold: float, redis_url: str, *,
                          shadow_rate: float, seed: int = 0, env: dict | None = None) -> dict:
    from redis.asyncio import Redis

    from costmesh.catalog import load_catalog
    from costmesh.domain import Usage
    from costmesh.gateway.routing_quality import RoutingLedger, RoutingQualitySettings, TenantPolicy
    from costmesh.pricing import cost_of

    try:
        from costmesh.tokens import count_tokens
    except ImportError:
        def count_tokens(text: str) -> int:
            return len(text.split())

    run_id = uuid.uuid4().hex[:10]
    tenant = f"eval-online-{run_id}"
    settings = RoutingQualitySettings.load({**os.environ, **(env or {})}).model_copy(update=dict(
        max_rows=0, refresh_s=0.05, prefix=f"costmesh-eval-{run_id}",
        policies={tenant: TenantPolicy(shadow_rate=shadow_rate)}))
    premium = load_catalog(os.environ.get("COSTMESH_CATALOG")).premium
    rng = random.Random(seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    half = len(order) // 2
    redis = Redis.from_url(redis_url)
    ledger = RoutingLedger(redis, settings, cheap_tiers=("trivial", "simple", "moderate"), flush_s=0.05)
    routed: list[bool] = []
    checks, cost_usd, path = 0, 0.0, []
    try:
        for position, index in enumerate(order):
            record = records[index]
            offset = ledger.offset_for(tenant)
            strong = bool(scores[index] >= min(1.0, max(0.0, threshold + offset)))
            routed.append(strong)
            ledger.count_served(tenant, PREMIUM if strong else CHEAP)
            if strong or rng.random() >= shadow_rate:
                continue
            checks += 1
            reference = record.strong_response or ""
            answer_tokens = count_tokens(reference) if reference else 200
            prompt_tokens = count_tokens(record.prompt)
            cost_usd += cost_of(premium, Usage(input_tokens=prompt_tokens, output_tokens=answer_tokens)).total_usd
            judge_in = prompt_tokens + answer_tokens + count_tokens(record.weak_response or "") + JUDGE_OVERHEAD_TOKENS
            cost_usd += cost_of(premium, Usage(input_tokens=judge_in, output_tokens=4)).total_usd
            estimate = await ledger.record(tenant, CHEAP, record.weak_score >= record.strong_score)
            if not path or estimate.offset != path[-1]["offset"]:
                path.append({"position": position, "offset": round(estimate.offset, 4)})
        estimate = await ledger.estimate(tenant)
    finally:
        await ledger.aclose()
        keys = [key async for key in redis.scan_iter(match=f"{settings.prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    ordered = [records[i] for i in order]
    static = [bool(scores[i] >= threshold) for i in order]
    final, final_static = _figures(ordered[half:], routed[half:]), _figures(ordered[half:], static[half:])
    whole = _figures(ordered, routed)
    return {
        "online": True, "rows": len(records), "shadow_rate": shadow_rate, "seed": seed,
        "threshold": round(threshold, 4), "target": settings.target,
        "quality_retained": whole["quality_retained"], "premium_share": whole["premium_share"],
        "final_rows": len(order) - half,
        "final_quality_retained": final["quality_retained"], "final_premium_share": final["premium_share"],
        "shadow_checks": checks, "shadow_share": round(checks / len(records), 4) if records else 0.0,
        "shadow_cost_usd": round(cost_usd, 6), "shadow_model": premium.id,
        "live": {"verdicts": estimate.total_verdicts, "quality_retained": round(estimate.quality_retained, 4),
                 "lower_bound": round(estimate.lower_bound, 4), "offset": round(estimate.offset, 4),
                 "moves": estimate.moves, "min_verdicts": settings.min_verdicts, "offset_path": path[:50]},
        "without_loop": {**_figures(ordered, static), "final_quality_retained": final_static["quality_retained"],
                         "final_premium_share": final_static["premium_share"]},
        "loop_change": {"quality_retained": round(final["quality_retained"] - final_static["quality_retained"], 4),
                        "premium_share": round(final["premium_share"] - final_static["premium_share"], 4)},
    }


def run_online(args: argparse.Namespace, records: list[BookRecord], scores: np.ndarray, threshold: float) -> dict:
    from costmesh.observability.logs import configure_logging

    configure_logging("eval", os.environ.get("COSTMESH_LOG_LEVEL", "warning"))  # on stderr: stdout is the result
    url = os.environ.get("REDIS_URL")

    async def go(redis_url: str) -> dict:
        return await evaluate_online(records, scores, threshold, redis_url, shadow_rate=args.shadow_rate,
                                     seed=args.seed)

    if url:
        return asyncio.run(go(url))
    from costmesh.tooling.redis_embedded import EmbeddedRedis

    with EmbeddedRedis() as redis:
        return asyncio.run(go(redis.url))


def table(result: dict) -> str:
    live, without = result["live"], result["without_loop"]
    return "\n".join([
        f"online replay of {result['rows']} rows (seed {result['seed']}), shadow rate {result['shadow_rate']}, "
        f"target {result['target']}",
        f"  second half: quality retained {result['final_quality_retained']:.3f} (without the loop "
        f"{without['final_quality_retained']:.3f}), premium share {result['final_premium_share']:.3f} "
        f"(without {without['final_premium_share']:.3f})",
        f"  checks {result['shadow_checks']} (share {result['shadow_share']:.3f}), "
        f"cost {result['shadow_cost_usd']:.4f} USD; offset {live['offset']:+.3f} after {live['moves']} moves, "
        f"live quality {live['quality_retained']:.3f} "
        f"(bound {live['lower_bound']:.3f})",
    ])
