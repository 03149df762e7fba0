"""BatchEngine's bookkeeping on real Redis, with an in-memory provider batch API and mesh clients
standing in at the edges: interrupted submissions, batches lost upstream, replicas sharing jobs."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.domain import Usage
from costmesh.errors import NotFound
from costmesh.gateway.batch.engine import SUBMIT_GRACE_S, BatchEngine, BatchSettings
from costmesh.gateway.batch.jobs import ENDED, ERRORED, IN_PROGRESS, SUBMITTING, SUCCEEDED, JobStore
from costmesh.gateway.batch.provider_batches import BatchResult, Payload
from costmesh.services.providers.base import priced
from costmesh.tooling.mesh_client import build_request

CATALOG = load_catalog()


class Clients:
    """The cache (always a miss) and the classifier (always SIMPLE); stores are recorded."""

    def __init__(self):
        self.stored: list[cache_pb2.StoreRequest] = []

    async def lookup(self, request, timeout):
        return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_MISS)

    async def classify(self, request, timeout):
        return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3)

    async def store(self, request, timeout):
        self.stored.append(request)
        return cache_pb2.StoreResponse(stored=True)


class ProviderBatches:
    """An in-memory batch API: answers every request with 100 input / 10 output tokens once `finish` is called."""

    def __init__(self, name: str):
        self.name = name
        self.batches: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        self.lost: set[str] = set()

    def payload(self, calls):
        return Payload([c.custom_id for c in calls], 10 * len(calls), len(calls))

    async def submit(self, payload, label):
        batch_id = f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.batches[batch_id] = list(payload.body)
        return batch_id

    async def ended(self, batch_id):
        if batch_id in self.lost:
            raise NotFound(f"{batch_id} archived")
        return batch_id in self.finished

    async def results(self, batch_id, models):
        return [
            BatchResult(cid, SUCCEEDED, priced(models[cid], text=f"answer {cid}", usage=Usage(100, 10),
                                               finish_reason="stop", batch_discount=0.5))
            for cid in self.batches[batch_id]
        ]

    async def cancel(self, batch_id):
        return None


@pytest.fixture
async def store(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield JobStore(client, prefix=f"test:batch:{uuid.uuid4().hex[:8]}:")  # its own keys: no other poller sees them
    await client.aclose()


def engine(store, apis, clock=None, clients=None) -> BatchEngine:
    return BatchEngine(store, clients or Clients(), CATALOG, apis, BatchSettings(poll_interval_s=0.01),
                       clock=clock or (lambda: 1_000_000.0))


def submit_request(n: int = 3) -> gw.SubmitBatchRequest:
    requests = []
    for i in range(n):
        request = build_request(f"Question {i}?", tenant="t1", max_tokens=100)
        request.request_id = f"q{i}"
        requests.append(request)
    return gw.SubmitBatchRequest(tenant_id="t1", requests=requests)


async def test_answers_are_priced_at_the_discount_stored_and_the_job_ends(store):
    api = ProviderBatches("openai")
    clients = Clients()
    batches = engine(store, {"openai": api}, clients=clients)
    job, items = await batches.submit(submit_request())
    assert job.status == IN_PROGRESS and {i.model for i in items} == {"gpt-5-mini"}  # simple tier, batch-capable
    assert await batches.poll_once() == 0  # not finished upstream yet
    api.finished.update(api.batches)
    assert await batches.poll_once() == 1
    job, items = await batches.get(job.id, "t1")
    assert job.status == ENDED and all(i.status == SUCCEEDED for i in items)
    response = gw.CompleteResponse.FromString(items[0].response)
    spec = CATALOG.model("gpt-5-mini")
    full = (100 * spec.input + 10 * spec.output) * 1e-6
    assert response.cost.total_usd == pytest.approx(full / 2) and response.savings.batch_usd == pytest.approx(full / 2)
    assert [s.text for s in clients.stored] == ["answer r0", "answer r1", "answer r2"]
    with pytest.raises(NotFound):  # another tenant does not see it
        await batches.get(job.id, "t2")


async def test_a_submission_interrupted_by_a_restart_fails_what_never_left(store):
    api = ProviderBatches("openai")
    now = [1_000_000.0]
    batches = engine(store, {"openai": api}, clock=lambda: now[0])
    job, items = await batches.submit(submit_request())
    job.status = SUBMITTING  # as if the gateway died after the first provider batch went out ...
    job.provider_batches.clear()
    await store.save_job(job)
    for item in items[1:]:  # ... with only the first request in it
        item.provider_batch = ""
    await store.save_items(job.id, items)
    await store.activate(job.id)
    assert await batches.poll_once() == 0
    assert (await store.job(job.id)).status == SUBMITTING  # inside the grace period: left alone
    now[0] += SUBMIT_GRACE_S + 1
    assert await batches.poll_once() == 1
    job, items = await batches.get(job.id, "t1")
    assert job.status == ENDED
    assert [i.status for i in items[1:]] == [ERRORED, ERRORED] and "interrupted" in items[1].error


async def test_a_batch_lost_upstream_errors_its_requests_and_ends_the_job(store):
    api = ProviderBatches("openai")
    batches = engine(store, {"openai": api})
    job, _ = await batches.submit(submit_request(2))
    api.lost.update(api.batches)
    assert await batches.poll_once() == 1
    job, items = await batches.get(job.id, "t1")
    assert job.status == ENDED and all(i.status == ERRORED and "not found upstream" in i.error for i in items)


async def test_a_job_locked_by_another_replica_is_skipped(store):
    api = ProviderBatches("openai")
    batches = engine(store, {"openai": api})
    job, _ = await batches.submit(submit_request(1))
    api.finished.update(api.batches)
    token = await store.lock(job.id)  # another gateway replica is finishing it
    assert await batches.poll_once() == 0
    await store.unlock(job.id, token)
    assert await batches.poll_once() == 1


async def test_a_batch_answered_entirely_from_the_cache_ends_at_once(store):
    class AllHits(Clients):
        async def lookup(self, request, timeout):
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_EXACT, text="cached", model="gpt-5-mini",
                                            baseline_cost_usd=0.01, similarity=1.0)

    api = ProviderBatches("openai")
    job, items = await engine(store, {"openai": api}, clients=AllHits()).submit(submit_request(2))
    assert job.status == ENDED and not api.batches and not job.provider_batches
    assert [gw.CompleteResponse.FromString(i.response).text for i in items] == ["cached", "cached"]
    assert job.id not in await store.active()
    assert await store._redis.ttl(store._meta(job.id)) > 0  # kept for the retention period, then gone
