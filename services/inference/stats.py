"""Engine metrics straight from vLLM's V1 stat-logger hook.

`AsyncLLM` calls every stat logger with the `SchedulerStats` each engine core sends after a
step: running/waiting requests, KV-cache usage, and the prefix-cache queries and hits of that
step (in tokens). `StatsCollector` keeps the latest gauges per engine core and sums the
counters, exactly as vLLM's Prometheus logger does for `vllm:prefix_cache_queries` /
`vllm:prefix_cache_hits`, but per engine instance instead of in the process-global registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costmesh.services.inference.results import EngineStats


@dataclass
class _Gauges:
    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0


class StatsCollector:
    """Accumulates `SchedulerStats` (duck-typed, so it is testable without vLLM)."""

    def __init__(self) -> None:
        self._gauges: dict[int, _Gauges] = {}
        self._queries = 0
        self._hits = 0

    def record(self, scheduler_stats: Any, engine_idx: int = 0) -> None:
        if scheduler_stats is None:
            return
        gauges = self._gauges.setdefault(engine_idx, _Gauges())
        gauges.running = scheduler_stats.num_running_reqs
        gauges.waiting = scheduler_stats.num_waiting_reqs + getattr(scheduler_stats, "num_skipped_waiting_reqs", 0)
        gauges.kv_cache_usage = scheduler_stats.kv_cache_usage
        prefix = scheduler_stats.prefix_cache_stats
        if prefix is not None:
            self._queries += prefix.queries
            self._hits += prefix.hits

    def snapshot(self, model: str) -> EngineStats:
        engines = list(self._gauges.values())
        return EngineStats(
            model=model,
            prefix_cache_queries=self._queries,
            prefix_cache_hits=self._hits,
            kv_cache_usage=(sum(g.kv_cache_usage for g in engines) / len(engines)) if engines else 0.0,
            running_requests=sum(g.running for g in engines),
            waiting_requests=sum(g.waiting for g in engines),
        )


def stat_logger_factory(collector: StatsCollector):
    """A per-engine-core `StatLoggerFactory` for `AsyncLLM(stat_loggers=[...])` feeding `collector`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class CollectorStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0):
            self.engine_index = engine_index

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            collector.record(scheduler_stats, engine_idx)

        def log_engine_initialized(self) -> None:
            pass

    def factory(vllm_config: Any, engine_index: int = 0) -> CollectorStatLogger:
        return CollectorStatLogger(vllm_config, engine_index)

    return factory
