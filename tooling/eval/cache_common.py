"""What `costmesh eval cache` and its `--online` replay share: the tally of a pairs file's
outcomes, the baselines, the request pieces, the run's header, the clean-up."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import numpy as np

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.common.v1 import common_pb2 as common

BASELINES = {  # name -> cosine similarity threshold
    "redisvl_distance_0.1": 0.9,
    "gptcache_similarity_0.8": 0.8,
}
HITS = (pb.HIT_KIND_EXACT, pb.HIT_KIND_SEMANTIC)


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def add(self, hit: bool, duplicate: bool, latency_s: float | None, error: bool) -> None:
        """One pair's outcome. A pair that could not be measured (the store failed, Redis was
        unavailable) is counted in `errors` and left out of the figures: as a miss it would
        lower the false-hit rate of a cache that never judged it."""
        if latency_s is not None:
            self.latencies_s.append(latency_s)
        if error:
            self.errors += 1
            return
        if duplicate:
            self.tp += hit
            self.fn += not hit
        else:
            self.fp += hit
            self.tn += not hit

    def figures(self) -> dict:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        lat = np.asarray(self.latencies_s) * 1000 if self.latencies_s else np.zeros(1)
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "false_hit_rate": round(self.fp / (self.fp + self.tn), 4) if self.fp + self.tn else 0.0,
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "hits": self.tp + self.fp,
            "errors": self.errors,
        }


def _messages(text: str) -> list[common.Message]:
    return [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=text)])]


SAMPLING = common.SamplingParams(temperature=0.0)


async def _drop_index(redis_url: str, index_name: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    with contextlib.suppress(Exception):
        await client.execute_command("FT.DROPINDEX", index_name, "DD")
    await client.aclose()


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="eval cache", unit="pair", file=sys.stderr, disable=not enabled, leave=False)


def run_header(pairs: list, concurrency: int, stats, failed: list) -> dict:
    """The keys both reports start with: the pairs, the verifier and the operating point the cache
    picked (`stats`: its GetStats)."""
    return {
        "pairs": len(pairs),
        "duplicates": sum(p.duplicate for p in pairs),
        "concurrency": concurrency,
        "verifier": stats.verifier,
        "failed_pairs": failed[:10],
        "operating_point": {
            "max_false_hit_rate": round(stats.max_false_hit_rate, 4),
            "threshold": round(stats.verifier_threshold, 4),
            "calibrated_false_hit_rate": round(stats.calibrated_false_hit_rate, 4),
            "calibrated_precision": round(stats.calibrated_precision, 4),
            "calibrated_recall": round(stats.calibrated_recall, 4),
            "calibrated_trap_recall": round(stats.calibrated_trap_recall, 4),
        },
    }
