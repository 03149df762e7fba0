"""The admin API's spend figures: one period of this gateway's cost records summed
(`costmesh.spend.summary`, as `costmesh report` sums them) and grouped by tenant, API key and
model (`costmesh.spend.breakdown`), as plain JSON.

Every list is bounded: about 30 time buckets, at most `top` groups per breakdown (the rest
summed as one `others` row), and the error and tier tables have one row per error type or tier.
Money is USD rounded to micro-dollars.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from costmesh.cost_records import LAYERS, read_records
from costmesh.spend.breakdown import DIMENSIONS, breakdown
from costmesh.spend.summary import Summary, summarize

MAX_ERROR_TYPES = 20


def _usd(value: float) -> float:
    return round(value, 6) + 0.0  # + 0.0: no -0.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary_json(summary: Summary) -> dict:
    cache = summary.cache
    routed = sum(v for k, v in summary.tiers.items() if k != "cached")
    return {
        "totals": {
            "requests": summary.requests,
            "answered": summary.answered,
            "failed": summary.failed,
            "cost_usd": _usd(summary.cost_usd),
            "baseline_usd": _usd(summary.baseline_usd),
            "saving_usd": _usd(summary.saving_usd),
            "saving_ratio": round(summary.saving_ratio, 4),
            "cost_per_request_usd": _usd(summary.cost_per_request),
        },
        "savings_by_layer": {layer: _usd(summary.savings[layer]) for layer in LAYERS},
        "cache": {
            "hit_rate": round(summary.hit_rate, 4),
            "exact_hits": cache["exact_hit"],
            "semantic_hits": cache["semantic_hit"],
            "misses": cache["miss"],
            "bypassed": cache["bypassed"],
            "unavailable": cache["unavailable"],
            "avg_hit_similarity": round(summary.avg_hit_similarity, 4),
        },
        "routing": {
            "tiers": dict(sorted(summary.tiers.items())),
            "routed": routed,
            "upgraded": summary.upgraded,
            "upgrade_rate": round(summary.upgrade_rate, 4),
        },
        "errors": dict(summary.errors.most_common(MAX_ERROR_TYPES)),
        "series": {
            "bucket_s": summary.bucket_s,
            "buckets": [
                {"start": b.start, "requests": b.requests, "answered": b.answered, "hits": b.hits,
                 "cost_usd": _usd(b.cost_usd), "baseline_usd": _usd(b.baseline_usd)}
                for b in summary.buckets
            ],
        },
    }


def spend(records_dir: str | os.PathLike, since: float, until: float, top: int) -> dict:
    """What GET /admin/api/v1/spend answers (see the README's "Dashboard" section)."""
    records = list(read_records(records_dir, since, until))
    out = {"period": {"since": since, "until": until, "since_iso": _iso(since), "until_iso": _iso(until)}}
    out.update(_summary_json(summarize(records, since, until)))
    out["by"] = {dimension: breakdown(records, dimension, since, until, top).to_json() for dimension in DIMENSIONS}
    return out
