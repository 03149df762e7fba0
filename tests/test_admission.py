"""Overload degrades, never times out into paid misses: admission control in the cache and the
classifier, and the gateway's store queue after the answer."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from costmesh.admission import Admission
from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.config import Env
from costmesh.errors import Overloaded, RateLimited, Unavailable, UpstreamTimeout
from costmesh.gateway.pipeline import GatewaySettings, Pipeline
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.store_queue import StoreQueue
from costmesh.rpc.server import start_service
from costmesh.rpc.status import from_rpc_error


def test_admission_refuses_past_its_limit_and_frees_slots():
    admission = Admission("thing", 2)
    with admission.slot(), admission.slot():
        with pytest.raises(Overloaded, match="thing busy: 2 calls in flight, at most 2"):
            with admission.slot():
                pass
        assert admission.in_flight == 2
    assert admission.in_flight == 0 and admission.admitted == 2 and admission.refused == 1
    with admission.slot():
        assert admission.in_flight == 1
    with pytest.raises(ValueError):
        Admission("thing", 0)


def test_overloaded_is_a_rate_limit_with_a_retry_hint():
    error = Overloaded("busy")
    assert isinstance(error, RateLimited) and error.retry_after_s == pytest.approx(0.05)


class FakeClients:
    """The gateway's view of the mesh, scripted per test."""

    def __init__(self, lookup_error: Exception | None = None, store_errors: list[Exception] | None = None):
        self.lookup_error = lookup_error
        self.store_errors = list(store_errors or [])
        self.stored: list[cache_pb2.StoreRequest] = []
        self.store_started = asyncio.Event()
        self.release_store = asyncio.Event()
        self.release_store.set()

    async def lookup(self, request, timeout):
        if self.lookup_error is not None:
            raise self.lookup_error
        return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_MISS, embedding=[0.5] * 4, embedding_model="m")

    async def store(self, request, timeout):
        self.store_started.set()
        await self.release_store.wait()
        if self.store_errors:
            raise self.store_errors.pop(0)
        self.stored.append(request)
        return cache_pb2.StoreResponse(stored=True)

    async def classify(self, request, timeout):
        from costmesh.api.classifier.v1 import classifier_pb2

        if request.embedding:  # the cache's vector came along
            return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3)
        return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3, embedding=[0.25] * 4,
                                               embedding_model="m")

    async def execute(self, request, timeout):
        return router_pb2.ExecuteResponse(text="an answer", model="cheap", provider="openai", tier=common.TIER_SIMPLE,
                                          finish_reason="stop", quality_passed=True)


def _request(text: str = "What is a B-tree?") -> gw.CompleteRequest:
    return gw.CompleteRequest(
        tenant_id="t", messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=text)])])


def _pipeline(clients: FakeClients, **queue) -> Pipeline:
    settings = GatewaySettings()
    return Pipeline(clients, settings, GatewayStats(), stores=StoreQueue(clients.store, **queue))


async def test_the_answer_does_not_wait_for_the_store():
    clients = FakeClients()
    clients.release_store.clear()  # the cache takes its time storing
    pipeline = _pipeline(clients)
    response = await asyncio.wait_for(pipeline.complete(_request()), 5)
    assert response.text == "an answer" and response.cache_status == gw.CACHE_STATUS_MISS
    await asyncio.wait_for(clients.store_started.wait(), 5)
    assert clients.stored == [] and pipeline.stats.to_pb().cache_stores_pending == 0  # taken by a worker
    clients.release_store.set()
    await pipeline.stores.drain()
    [stored] = clients.stored
    assert stored.text == "an answer" and list(stored.embedding) == [0.5] * 4  # the lookup's vector travels on
    assert pipeline.stats.to_pb().cache_stores == 1
    await pipeline.aclose()


@pytest.mark.parametrize(("error", "counter"), [(Overloaded("cache lookups busy"), "cache_lookups_busy"),
                                                (UpstreamTimeout("deadline"), "cache_lookups_timed_out")])
async def test_a_busy_or_slow_lookup_is_answered_uncached_and_still_stored(error, counter):
    clients = FakeClients(lookup_error=error)
    pipeline = _pipeline(clients)
    response = await pipeline.complete(_request())
    assert response.cache_status == gw.CACHE_STATUS_UNAVAILABLE and response.text == "an answer"
    await pipeline.stores.drain()
    [stored] = clients.stored
    # The classifier embedded the prompt (the cache could not): the store reuses its vector.
    assert list(stored.embedding) == [0.25] * 4 and stored.embedding_model == "m"
    stats = pipeline.stats.to_pb()
    assert getattr(stats, counter) == 1 and stats.cache_stores == 1
    await pipeline.aclose()


async def test_an_unreachable_cache_is_not_stored_into():
    clients = FakeClients(lookup_error=Unavailable("connection refused"))
    pipeline = _pipeline(clients)
    response = await pipeline.complete(_request())
    assert response.cache_status == gw.CACHE_STATUS_UNAVAILABLE
    await pipeline.stores.drain()
    assert clients.stored == [] and pipeline.stats.to_pb().cache_lookups_busy == 0
    await pipeline.aclose()


async def test_a_busy_store_is_retried_until_it_lands():
    clients = FakeClients(store_errors=[Overloaded("busy"), Overloaded("busy")])
    pipeline = _pipeline(clients, busy_backoff_s=0.001)
    await pipeline.complete(_request())
    await pipeline.stores.drain()
    assert len(clients.stored) == 1
    stats = pipeline.stats.to_pb()
    assert stats.cache_stores == 1 and stats.cache_stores_failed == 0
    await pipeline.aclose()


async def test_a_full_queue_drops_and_counts_never_blocks():
    clients = FakeClients()
    clients.release_store.clear()
    pipeline = _pipeline(clients, max_pending=2, workers=1)
    for i in range(5):  # one taken by the worker, two queued, two dropped
        await asyncio.wait_for(pipeline.complete(_request(f"question {i}")), 5)
        await asyncio.sleep(0)
    stats = pipeline.stats.to_pb()
    assert stats.cache_stores_dropped == 2 and stats.cache_stores_pending == 2
    clients.release_store.set()
    await pipeline.aclose()
    assert len(clients.stored) == 3 and pipeline.stats.to_pb().cache_stores == 3


async def test_a_failed_store_is_counted():
    clients = FakeClients(store_errors=[Unavailable("redis down")])
    pipeline = _pipeline(clients)
    await pipeline.complete(_request())
    await pipeline.stores.drain()
    assert pipeline.stats.to_pb().cache_stores_failed == 1
    await pipeline.aclose()


async def test_the_cache_service_refuses_past_its_limit_with_overloaded(redis_url, tmp_path):
    """A real cache service allowed one lookup at a time: concurrent lookups beyond it come back at
    once as RESOURCE_EXHAUSTED with the OVERLOADED reason, which clients read as Overloaded."""
    from costmesh.services.cache.service import SPEC as CACHE

    env = Env({"COSTMESH_MESH_AUTH": "off",
               "REDIS_URL": redis_url, "COSTMESH_CACHE_MAX_INFLIGHT_LOOKUPS": "1", "COSTMESH_LOG_LEVEL": "warning",
               "COSTMESH_CACHE_INDEX_PREFIX": f"admission-{tmp_path.name}"})
    service = await start_service(CACHE, env, port=0)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = cache_pb2_grpc.CacheServiceStub(channel)

            async def lookup(i: int):
                request = cache_pb2.LookupRequest(
                    scope=cache_pb2.Scope(tenant_id="t"),
                    messages=[common.Message(role=common.ROLE_USER,
                                             content=[common.ContentPart(text=f"question {i}?")])])
                try:
                    return await stub.Lookup(request, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    return exc

            results = await asyncio.gather(*(lookup(i) for i in range(12)))
            refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            answered = [r for r in results if not isinstance(r, grpc.aio.AioRpcError)]
            assert answered and refused
            assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert all(isinstance(from_rpc_error(r), Overloaded) for r in refused)
            stats = await stub.GetStats(cache_pb2.GetStatsRequest(), timeout=30)
            assert stats.lookups_busy == len(refused)
    finally:
        await service.stop(0.5)


def test_admission_refuses_what_would_finish_after_the_deadline():
    now = [0.0]
    admission = Admission("thing", 10, clock=lambda: now[0], smoothing=1.0)
    with admission.slot(deadline_s=2.0):
        now[0] += 1.5  # a slow call: the queue is long
    assert admission.latency_s == pytest.approx(1.5)
    with admission.slot():  # nothing in flight: always admitted, however slow the last call was
        with pytest.raises(Overloaded, match="recent calls took 1.50 s, the caller has 1.00 s left"):
            with admission.slot(deadline_s=1.0):
                pass
        with admission.slot(deadline_s=5.0):  # enough time left
            pass
        with admission.slot(deadline_s=None):  # no deadline: only the limit applies
            pass
    assert admission.refused == 1
