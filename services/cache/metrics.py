"""The cache service's own metrics, on its own Prometheus endpoint (the runtime's meter).

Prometheus names (what the dashboards and the README use):
  costmesh_cache_entries                  entries in the index (gauge)
  costmesh_cache_entry_bytes              Redis memory per cached entry, sampled (gauge)
  costmesh_cache_evictions_total          keys Redis evicted under memory pressure (Redis-wide)
  costmesh_cache_redis_available          1 while Redis answers, 0 while the cache fails open
  costmesh_cache_stores_total{outcome}    stored, refused (by policy), dropped (embedding or Redis failed)
  costmesh_cache_lookups_busy_total       lookups refused at once by admission control
  costmesh_cache_stores_busy_total        stores refused at once by admission control
  costmesh_cache_verifier_rejections_total  candidates the verifier turned down
  costmesh_cache_errors_total             failures the cache absorbed (Redis, embedder, verifier)

Lookups by kind and the similarity of hits are counted from the Lookup spans
(`costmesh.observability.span_metrics`: `costmesh_cache_lookups_total{kind}`,
`costmesh_cache_hit_similarity`), so they are not counted here again.

The counters are read from the `CacheCore` at scrape time (plain ints, written on the event loop,
read from the scrape thread). Entries, evictions and bytes per entry come from Redis through
`CacheCore.stats()`, run on the service's event loop; one answer serves every instrument of a
scrape (kept `max_age_s`). When Redis or the loop does not answer in time those series are left
out of that scrape; the scrape itself never fails. Entries, evictions and bytes per entry are
Redis-wide: every cache replica reports the same figure, so aggregate them with max(), not sum().
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from costmesh.observability.scrape_reads import CachedRead, read_on_loop

from .core import CacheCore
from .stats import CacheStats


class CacheMetrics:
    def __init__(self, meter: Meter, core: CacheCore, loop: asyncio.AbstractEventLoop, *,
                 timeout_s: float | None = None, max_age_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._core = core
        self._loop = loop
        self._timeout_s = timeout_s if timeout_s is not None else core.config.admin_timeout_s + 1.0
        self._stats = CachedRead(self._read, max_age_s, clock)  # one CacheCore.stats() per scrape
        self._closed = False

        meter.create_observable_gauge(
            "costmesh.cache.entries", [self._entries], unit="{entry}", description="entries in the cache")
        meter.create_observable_gauge(
            "costmesh.cache.entry", [self._entry_bytes], unit="By",
            description="Redis memory per cached entry (sampled)")
        meter.create_observable_counter(
            "costmesh.cache.evictions", [self._evictions], unit="{entry}",
            description="keys Redis evicted under memory pressure (Redis-wide)")
        meter.create_observable_gauge(
            "costmesh.cache.redis_available", [self._redis_available], unit="1",
            description="1 while Redis answers, 0 while the cache fails open (every lookup a miss)")
        meter.create_observable_counter(
            "costmesh.cache.stores", [self._stores], unit="{store}",
            description="store calls, by outcome: stored, refused (by policy), dropped (embedding or Redis failed)")
        meter.create_observable_counter(
            "costmesh.cache.lookups_busy", [self._counter(lambda: core.lookup_admission.refused)], unit="{lookup}",
            description="lookups refused at once by admission control (the gateway answers uncached)")
        meter.create_observable_counter(
            "costmesh.cache.stores_busy", [self._counter(lambda: core.store_admission.refused)], unit="{store}",
            description="stores refused at once by admission control")
        meter.create_observable_counter(
            "costmesh.cache.verifier_rejections", [self._counter(lambda: core.counters.verifier_rejections)],
            unit="{candidate}", description="candidates the verifier turned down")
        meter.create_observable_counter(
            "costmesh.cache.errors", [self._counter(lambda: core.counters.errors)], unit="{error}",
            description="failures the cache absorbed (Redis, embedder, verifier): it failed open")

    def close(self) -> None:
        """Stop reading the core (the service stopped; the meter provider may live on)."""
        self._closed = True

    # -- counters: read straight from the core -----------------------------------------

    def _counter(self, read: Callable[[], int]):
        def observe(_options: CallbackOptions):
            return [] if self._closed else [Observation(read())]
        return observe

    def _stores(self, _options: CallbackOptions):
        if self._closed:
            return []
        c = self._core.counters
        return [Observation(c.stores, {"outcome": "stored"}), Observation(c.stores_refused, {"outcome": "refused"}),
                Observation(c.stores_dropped, {"outcome": "dropped"})]

    # -- Redis figures: one CacheCore.stats() per scrape ---------------------------------

    def _entries(self, _options: CallbackOptions):
        stats = self._stats()
        return [Observation(stats.entries)] if stats is not None and stats.redis_available else []

    def _entry_bytes(self, _options: CallbackOptions):
        stats = self._stats()
        return [Observation(stats.bytes_per_entry)] if stats is not None and stats.entries else []

    def _evictions(self, _options: CallbackOptions):
        stats = self._stats()
        return [Observation(stats.evictions)] if stats is not None and stats.redis_available else []

    def _redis_available(self, _options: CallbackOptions):
        stats = self._stats()
        return [Observation(int(stats.redis_available))] if stats is not None else []

    def _read(self) -> CacheStats | None:
        if self._closed:
            return None
        return read_on_loop(self._loop, self._core.stats, self._timeout_s)
