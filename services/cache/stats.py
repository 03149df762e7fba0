"""Counters of one cache instance, and the snapshot GetStats returns."""

from __future__ import annotations

from dataclasses import dataclass

from .shadow import LiveEstimate


@dataclass
class CacheCounters:
    lookups: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    not_cacheable: int = 0
    errors: int = 0
    stores: int = 0
    stores_refused: int = 0
    stores_dropped: int = 0
    verifier_rejections: int = 0
    hit_similarity_sum: float = 0.0
    shadow_drawn: int = 0  # semantic hits drawn for a shadow check

    @property
    def hits(self) -> int:
        return self.exact_hits + self.semantic_hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def avg_hit_similarity(self) -> float:
        return self.hit_similarity_sum / self.hits if self.hits else 0.0


@dataclass(frozen=True)
class CacheStats:
    lookups: int
    exact_hits: int
    semantic_hits: int
    misses: int
    errors: int
    stores: int
    stores_refused: int
    stores_dropped: int
    entries: int
    hit_rate: float
    avg_hit_similarity: float
    verifier_rejections: int
    evictions: int
    bytes_per_entry: float
    embedding_model: str
    index_name: str
    redis_available: bool = True
    not_cacheable: int = 0
    lookups_busy: int = 0
    stores_busy: int = 0
    verifier: str = ""
    max_false_hit_rate: float = 0.0
    verifier_threshold: float = 0.0
    calibrated_false_hit_rate: float = 0.0
    calibrated_precision: float = 0.0
    calibrated_recall: float = 0.0
    calibrated_trap_recall: float = 0.0
    shadow_drawn: int = 0
    live: LiveEstimate | None = None  # the tenant asked for's live false-hit estimate
