"""BatchEngine's bookkeeping on real Redis, with an in-memory provider batch API and mesh clients
standing in at the edges (the router's stand-in plans with the router's own cascade): interrupted
submissions, batches lost upstream, replicas sharing jobs through leases."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.catalog import Tier, load_catalog
from costmesh.domain import Usage
from costmesh.errors import InvalidRequest, NotFound
from costmesh.services.batches.engine import SUBMIT_GRACE_S, BatchEngine, BatchSettings
from costmesh.services.batches.jobs import ENDED, ERRORED, IN_PROGRESS, SUBMITTING, SUCCEEDED, JobStore
from costmesh.services.batches.records import BatchResult
from costmesh.services.providers.base import priced
from costmesh.services.router.cascade import Cascade
from costmesh.services.router.records import RouteRequest
from costmesh.tooling.mesh_client import build_request

CATALOG = load_catalog()


class Clients:
    """The cache (always a miss), the classifier (always SIMPLE) and the router (its cascade's plan);
    stores and plans are recorded."""

    def __init__(self):
        self.stored: list[cache_pb2.StoreRequest] = []
        self.plans: list[router_pb2.PlanRequest] = []

    async def lookup(self, request, timeout):
        return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_MISS)

    async def classify(self, request, timeout):
        return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3)

    async def store(self, request, timeout):
        self.stored.append(request)
        return cache_pb2.StoreResponse(stored=True)

    async def plan(self, request, timeout):
        self.plans.append(request)
        route = RouteRequest((), tier=Tier(request.tier) if request.tier else None,
                             max_tier=Tier(request.max_tier) if request.max_tier else None)
        tier, spec = Cascade(CATALOG, None, None).first(route, tuple(request.providers))
        return router_pb2.PlanResponse(model=spec.id, provider=spec.provider, tier=int(tier))


class ProviderBatches:
    """In-memory batch APIs of `names`: answers every request with 100 input / 10 output tokens once
    `finish` is called."""

    def __init__(self, *names: str):
        self.names = frozenset(names)
        self.batches: dict[str, list[str]] = {}
        self.checked: list[list[str]] = []
        self.finished: set[str] = set()
        self.lost: set[str] = set()
        self.limit = 50_000  # requests per provider batch, as the providers service checks them

    async def providers(self):
        return self.names

    async def check(self, requests):
        self.checked.append([r.custom_id for r in requests])
        if len(requests) > self.limit:
            raise InvalidRequest(f"requests: at most {self.limit}")

    async def submit(self, requests, label):
        provider = CATALOG.model(requests[0].model).provider
        batch_id = f"{provider}-{uuid.uuid4().hex[:8]}"
        self.batches[batch_id] = [r.custom_id for r in requests]
        return provider, batch_id

    async def ended(self, provider, batch_id):
        if batch_id in self.lost:
            raise NotFound(f"{batch_id} archived")
        return batch_id in self.finished

    async def results(self, provider, batch_id, models):
        return [
            BatchResult(cid, SUCCEEDED, priced(CATALOG.model(models[cid]), text=f"answer {cid}",
                                               usage=Usage(100, 10), finish_reason="stop", batch_discount=0.5))
            for cid in self.batches[batch_id]
        ]

    async def cancel(self, provider, batch_id):
        return None


@pytest.fixture
async def store(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield JobStore(client, prefix=f"test:batch:{uuid.uuid4().hex[:8]}:")  # its own keys: no other poller sees them
    await client.aclose()


def engine(store, api, clock=None, clients=None) -> BatchEngine:
    return BatchEngine(store, clients or Clients(), api, CATALOG, BatchSettings(poll_interval_s=0.01),
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
    batches = engine(store, api, clients=clients)
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
    batches = engine(store, api, clock=lambda: now[0])
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
    batches = engine(store, api)
    job, _ = await batches.submit(submit_request(2))
    api.lost.update(api.batches)
    assert await batches.poll_once() == 1
    job, items = await batches.get(job.id, "t1")
    assert job.status == ENDED and all(i.status == ERRORED and "not found upstream" in i.error for i in items)


async def test_a_job_locked_by_another_replica_is_skipped(store):
    api = ProviderBatches("openai")
    batches = engine(store, api)
    job, _ = await batches.submit(submit_request(1))
    api.finished.update(api.batches)
    lease = await store.lock(job.id)  # another replica is finishing it
    assert await batches.poll_once() == 0
    await lease.release()
    assert await batches.poll_once() == 1


async def test_a_batch_answered_entirely_from_the_cache_ends_at_once(store):
    class AllHits(Clients):
        async def lookup(self, request, timeout):
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_EXACT, text="cached", model="gpt-5-mini",
                                            baseline_cost_usd=0.01, similarity=1.0)

    api = ProviderBatches("openai")
    job, items = await engine(store, api, clients=AllHits()).submit(submit_request(2))
    assert job.status == ENDED and not api.batches and not job.provider_batches
    assert [gw.CompleteResponse.FromString(i.response).text for i in items] == ["cached", "cached"]
    assert job.id not in await store.active()
    assert await store._redis.ttl(store._meta(job.id)) > 0  # kept for the retention period, then gone


async def test_the_model_is_the_routers_plan_among_the_batch_providers(store):
    api = ProviderBatches("anthropic")  # only Anthropic has a batch API here
    clients = Clients()
    request = submit_request(3)
    request.requests[2].routing.min_tier = common.TIER_COMPLEX
    job, items = await engine(store, api, clients=clients).submit(request)
    assert [(i.model, i.tier) for i in items] == [
        ("claude-haiku-4-5", common.TIER_SIMPLE), ("claude-haiku-4-5", common.TIER_SIMPLE),
        ("claude-opus-4-5", common.TIER_COMPLEX),
    ]
    assert [i.classified_tier for i in items] == [common.TIER_SIMPLE] * 3
    # one plan per (tier, max_tier), asked of the router with the batch providers
    assert sorted((p.tier, tuple(p.providers)) for p in clients.plans) == [
        (common.TIER_SIMPLE, ("anthropic",)), (common.TIER_COMPLEX, ("anthropic",))
    ]
    assert len(job.provider_batches) == 1  # Anthropic: one batch whatever the models


async def test_a_batch_over_a_provider_limit_is_refused_before_anything_is_sent(store):
    api = ProviderBatches("openai")
    api.limit = 2
    with pytest.raises(InvalidRequest, match="at most 2"):
        await engine(store, api).submit(submit_request(3))
    assert api.checked and not api.batches and not await store.active()
    pinned = submit_request(1)
    pinned.requests[0].routing.model = "claude-haiku-4-5"  # no Anthropic batch API here
    with pytest.raises(InvalidRequest, match=r"requests\[0\].routing.model: 'claude-haiku-4-5'"):
        await engine(store, api).submit(pinned)


async def test_a_lease_is_renewed_while_held_and_lapses_when_its_holder_stops(store):
    lease = await store.lock("job-x", ttl_s=0.3)
    assert lease is not None
    await asyncio.sleep(1.0)  # three times its lease: renewed meanwhile
    assert await store.lock("job-x", ttl_s=0.3) is None
    await lease.release()
    again = await store.lock("job-x", ttl_s=0.3)
    assert again is not None
    again._renewer.cancel()  # as if its holder died: nothing renews it
    await asyncio.sleep(0.5)
    taken = await store.lock("job-x", ttl_s=0.3, wait_s=1.0)
    assert taken is not None
    await again.release()  # no longer its lease: releasing leaves the new holder's alone
    assert await store.lock("job-x", ttl_s=0.3) is None
    await taken.release()
