"""The cache service's own metrics (`services/cache/metrics.py`), scraped from another thread as
Prometheus does: counters straight from the core, Redis figures through `CacheCore.stats()` on
the service's loop, and a scrape that never fails or hangs when Redis or the loop does not answer."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from costmesh.admission import Admission
from costmesh.observability.metrics import build_metrics
from costmesh.server_settings import ServerSettings
from costmesh.services.cache.metrics import CacheMetrics
from costmesh.services.cache.stats import CacheCounters, CacheStats

STATS = CacheStats(lookups=0, exact_hits=0, semantic_hits=0, misses=0, errors=0, stores=0, stores_refused=0,
                   stores_dropped=0, entries=12, hit_rate=0.0, avg_hit_similarity=0.0, verifier_rejections=0,
                   evictions=3, bytes_per_entry=4500.0, embedding_model="m", index_name="i")


class FakeCore:
    def __init__(self, stats: CacheStats | None = STATS, delay_s: float = 0.0):
        self.counters = CacheCounters(stores=5, stores_refused=2, stores_dropped=1, verifier_rejections=4, errors=1)
        self.lookup_admission = Admission("cache lookups", 1)
        self.store_admission = Admission("cache stores", 1)
        self.lookup_admission.refused, self.store_admission.refused = 7, 8
        self.config = SimpleNamespace(admin_timeout_s=0.2)
        self.calls = 0
        self._stats, self._delay_s = stats, delay_s

    async def stats(self) -> CacheStats:
        self.calls += 1
        await asyncio.sleep(self._delay_s)
        if self._stats is None:
            raise RuntimeError("boom")
        return self._stats


@pytest.fixture
def loop():
    """The service's event loop, running in its own thread (the scrape comes from another)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def scrape(metrics) -> dict[str, dict]:
    """{family: {labels-tuple: value}} of the OpenMetrics exposition, strictly parsed."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        out[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples
                            if not s.name.endswith("_created")}
    return out


def test_counters_and_redis_figures_under_their_prometheus_names(loop):
    metrics = build_metrics("cache", ServerSettings(), port=None)
    core = FakeCore()
    CacheMetrics(metrics.meter(), core, loop)
    got = scrape(metrics)
    assert got["costmesh_cache_entries"] == {(): 12}
    assert got["costmesh_cache_entry_bytes"] == {(): 4500.0}
    assert got["costmesh_cache_evictions"] == {(): 3}
    assert got["costmesh_cache_redis_available"] == {(): 1}
    assert got["costmesh_cache_stores"] == {(("outcome", "stored"),): 5, (("outcome", "refused"),): 2,
                                            (("outcome", "dropped"),): 1}
    assert got["costmesh_cache_lookups_busy"] == {(): 7}
    assert got["costmesh_cache_stores_busy"] == {(): 8}
    assert got["costmesh_cache_verifier_rejections"] == {(): 4}
    assert got["costmesh_cache_errors"] == {(): 1}
    assert core.calls == 1  # one stats() serves every instrument of a scrape
    metrics.shutdown()


def test_redis_down_leaves_its_series_out_and_says_so(loop):
    metrics = build_metrics("cache", ServerSettings(), port=None)
    CacheMetrics(metrics.meter(), FakeCore(replace(STATS, entries=0, evictions=0, redis_available=False)), loop)
    got = scrape(metrics)
    assert got["costmesh_cache_redis_available"] == {(): 0}
    assert "costmesh_cache_entries" not in got and "costmesh_cache_evictions" not in got
    assert got["costmesh_cache_stores_busy"] == {(): 8}  # the counters need no Redis
    metrics.shutdown()


@pytest.mark.parametrize("core", [FakeCore(stats=None), FakeCore(delay_s=5.0)], ids=["raises", "hangs"])
def test_a_failing_or_slow_stats_call_never_fails_or_holds_the_scrape(loop, core):
    metrics = build_metrics("cache", ServerSettings(), port=None)
    CacheMetrics(metrics.meter(), core, loop, timeout_s=0.3)
    started = time.monotonic()
    got = scrape(metrics)
    assert time.monotonic() - started < 3
    assert "costmesh_cache_entries" not in got and "costmesh_cache_redis_available" not in got
    assert got["costmesh_cache_lookups_busy"] == {(): 7}
    metrics.shutdown()


async def test_a_scrape_on_the_loop_itself_does_not_deadlock():
    metrics = build_metrics("cache", ServerSettings(), port=None)
    core = FakeCore()
    CacheMetrics(metrics.meter(), core, asyncio.get_running_loop())
    got = scrape(metrics)  # on the loop's own thread: the Redis figures are skipped, not awaited
    assert core.calls == 0 and "costmesh_cache_entries" not in got
    assert got["costmesh_cache_errors"] == {(): 1}
    metrics.shutdown()


def test_after_close_nothing_is_read(loop):
    metrics = build_metrics("cache", ServerSettings(), port=None)
    core = FakeCore()
    CacheMetrics(metrics.meter(), core, loop).close()
    got = scrape(metrics)
    assert core.calls == 0 and not [name for name in got if name.startswith("costmesh_cache_")]
    metrics.shutdown()
