"""`costmesh eval cache --pairs FILE --curve`: the packaged verifier's whole operating curve on a pairs file.

Each pair is scored as the cache scores a lookup of `b` against a stored `a` (the embedder's cosine,
the artifact's vetoes and similarity floor, the model's probability with the cross-encoder blended in;
no Redis, no service), so the replay's hits at the calibrated threshold are these scores over it. From
the scores it prints, for a set of thresholds, recall, the false-hit rate (false hits per
non-duplicate pair, as `costmesh eval cache` counts it) and precision; the most recall any threshold
keeps at a false-hit rate at or under `--max-false-hit-rate`; the least false-hit rate any threshold
has at a recall of at least `--min-recall`; and, where the file's rows carry a `kind`, the hits per
kind at the calibrated threshold. It bounds what recalibrating the threshold (the shadow-check loop)
can reach on that traffic: no threshold does better than the curve.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np

from costmesh.tooling.datasets import Pair

GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


async def score_pairs(pairs: list[Pair], embedder=None) -> tuple[np.ndarray, float]:
    """The verifier's P(same answer) per pair (-1 where a veto or the similarity floor rejects it
    before scoring) and its calibrated threshold at COSTMESH_CACHE_MAX_FALSE_HIT_RATE."""
    from costmesh.config import Env
    from costmesh.services.cache.config import CacheConfig
    from costmesh.services.cache.service import build_embedder, build_verifier

    env = Env()
    own = embedder is None
    if own:
        embedder = await asyncio.to_thread(build_embedder, env)
    verifier = build_verifier(CacheConfig.from_env(env), embedder)
    if not hasattr(verifier, "threshold"):
        raise SystemExit("--curve needs the learned verifier (COSTMESH_CACHE_VERIFIER unset)")
    scores = []
    try:
        for pair in pairs:
            stored, asked = await embedder.embed([pair.a, pair.b])
            stored, asked = np.asarray(stored), np.asarray(asked)
            similarity = float(stored @ asked / (np.linalg.norm(stored) * np.linalg.norm(asked)))
            [verdict] = await verifier.verify_many(pair.b, [(pair.a, similarity)], threshold=0.0)
            scored = verdict.reason == "" or verdict.reason.startswith("model")
            scores.append(verdict.score if scored else -1.0)
    finally:
        await verifier.aclose()
        if own:
            await embedder.aclose()
    return np.asarray(scores), float(verifier.threshold)


def _at(scores: np.ndarray, duplicate: np.ndarray, threshold: float) -> dict:
    hit = scores >= threshold
    tp, fp = int((hit & duplicate).sum()), int((hit & ~duplicate).sum())
    positives, negatives = int(duplicate.sum()), int((~duplicate).sum())
    return {"threshold": round(float(threshold), 4), "recall": round(tp / positives, 4) if positives else 0.0,
            "false_hit_rate": round(fp / negatives, 4) if negatives else 0.0,
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0, "hits": tp + fp}


def curve(scores: np.ndarray, duplicate: np.ndarray, calibrated: float, *, max_false_hit_rate: float,
          min_recall: float, kinds: list[str] | None = None) -> dict:
    points = [_at(scores, duplicate, t) for t in np.unique(scores[scores >= 0])]
    within = [p for p in points if p["false_hit_rate"] <= max_false_hit_rate]
    enough = [p for p in points if p["recall"] >= min_recall]
    result = {
        "pairs": int(len(scores)), "duplicates": int(duplicate.sum()),
        "calibrated": _at(scores, duplicate, calibrated),
        "grid": [_at(scores, duplicate, t) for t in GRID],
        "max_false_hit_rate": max_false_hit_rate, "min_recall": min_recall,
        "best_recall_within_max": max(within, key=lambda p: (p["recall"], -p["threshold"])) if within else None,
        "least_false_hit_rate_at_min_recall": min(enough, key=lambda p: (p["false_hit_rate"], -p["threshold"]))
        if enough else None,
        "never_scored": {"pairs": int((scores < 0).sum()), "duplicates": int(((scores < 0) & duplicate).sum())},
    }
    if kinds is not None:
        hit = scores >= calibrated
        result["hits_by_kind_at_calibrated"] = {kind: {"hits": int(sum(h for h, k in zip(hit, kinds) if k == kind)),
                                                       "pairs": count}
                                                for kind, count in sorted(Counter(kinds).items())}
    return result


def format_curve(result: dict) -> str:
    lines = [f"{result['pairs']} pairs ({result['duplicates']} duplicates); the packaged verifier's curve",
             f"{'threshold':>9} {'recall':>7} {'false-hit':>9} {'precision':>9} {'hits':>5}"]
    for p in [result["calibrated"], *result["grid"]]:
        lines.append(f"{p['threshold']:9.3f} {p['recall']:7.3f} {p['false_hit_rate']:9.4f} {p['precision']:9.3f} "
                     f"{p['hits']:5d}")
    best, least = result["best_recall_within_max"], result["least_false_hit_rate_at_min_recall"]
    lines.append(f"most recall at a false-hit rate <= {result['max_false_hit_rate']}: "
                 + (f"{best['recall']:.3f} (threshold {best['threshold']})" if best else "none"))
    lines.append(f"least false-hit rate at recall >= {result['min_recall']}: "
                 + (f"{least['false_hit_rate']:.4f} (threshold {least['threshold']})" if least else "none"))
    return "\n".join(lines)
