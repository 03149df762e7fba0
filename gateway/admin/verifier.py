"""The cache verifier's operating point for the admin API, as the running cache reports it
(`CacheService.GetStats`, asked over the mesh like any other call): the verifier, the operator's
false-hit bound, the threshold picked for it on held-out data and what that threshold gave there,
and the cache's own counters since it started. Unreachable cache: `available` false, with why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from costmesh.api.cache.v1 import cache_pb2
from costmesh.errors import CostmeshError

SOURCE = "the cache service (CacheService.GetStats)"

CacheStats = Callable[[], Awaitable[cache_pb2.GetStatsResponse]]


async def operating_point(cache_stats: CacheStats | None) -> dict:
    """What GET /admin/api/v1/verifier answers."""
    if cache_stats is None:
        return {"available": False, "source": SOURCE, "reason": "this gateway has no cache peer"}
    try:
        s = await cache_stats()
    except CostmeshError as exc:
        return {"available": False, "source": SOURCE, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {
        "available": True,
        "source": SOURCE,
        "verifier": s.verifier,
        "max_false_hit_rate": round(s.max_false_hit_rate, 6),
        "threshold": round(s.verifier_threshold, 6),
        "calibrated_false_hit_rate": round(s.calibrated_false_hit_rate, 6),
        "calibrated_precision": round(s.calibrated_precision, 6),
        "calibrated_recall": round(s.calibrated_recall, 6),
        "calibrated_trap_recall": round(s.calibrated_trap_recall, 6),
        "lookups": s.lookups,
        "hit_rate": round(s.hit_rate, 4),
        "verifier_rejections": s.verifier_rejections,
        "entries": s.entries,
        "redis_available": s.redis_available,
    }
