"""Feedback on its own (issue 22): the gateway remembers the answers it served from the cache for a
bounded time (in process here; Redis in test_feedback_mesh.py), and a report by request id removes
the entry and, for a semantic hit, counts as a "different" verdict. Only the tenant's own requests;
unknown, expired or reported twice: NotFound. Fake mesh clients, no servers."""

from __future__ import annotations

import pytest

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import NotFound, PermissionDenied, Unavailable
from costmesh.gateway.cache_answers import cache_scope, hit_response
from costmesh.gateway.feedback import Feedback, LocalMemory
from costmesh.tooling.mesh_client import build_request


class FakeClients:
    def __init__(self, consent: bool = True):
        self.lookup_observers = []
        self.consent = consent
        self.judged: list[cache_pb2.JudgeShadowRequest] = []
        self.invalidated: list[cache_pb2.InvalidateRequest] = []
        self.fail_invalidate = False

    async def judge_shadow(self, request, timeout):
        if not self.consent:
            raise PermissionDenied("no consent")
        self.judged.append(request)
        return cache_pb2.JudgeShadowResponse(verdict=request.verdict, judge="caller")

    async def invalidate(self, request, timeout):
        if self.fail_invalidate:
            raise Unavailable("redis down")
        self.invalidated.append(request)
        return cache_pb2.InvalidateResponse(removed=1)


def served(feedback: Feedback, question: str, tenant: str, request_id: str, kind: int,
           entry: str) -> gw.CompleteResponse:
    """The pipeline's lookup answered with a hit, then its answer, as the observers see them."""
    request = build_request(question, tenant=tenant)
    lookup = cache_pb2.LookupRequest(scope=cache_scope(request), messages=request.messages, sampling=request.sampling)
    hit = cache_pb2.LookupResponse(kind=kind, text="the cached answer", entry_id=entry, similarity=0.93)
    feedback.seen_lookup(lookup, hit)
    response = hit_response(request_id, hit)
    feedback.on_answer(request, response)
    return response


async def test_a_semantic_hit_reported_is_removed_and_counted_once():
    clients = FakeClients()
    feedback = Feedback(clients, LocalMemory(60, 100))
    served(feedback, "How can I reset my password?", "acme", "req-1", cache_pb2.HIT_KIND_SEMANTIC, "e1")
    out = await feedback.report("acme", "req-1", "wrong steps")
    assert (out.request_id, out.cache_status, out.entries_removed, out.verdict_counted) == (
        "req-1", gw.CACHE_STATUS_SEMANTIC_HIT, 1, True)
    [judged] = clients.judged
    assert judged.verdict == cache_pb2.SHADOW_VERDICT_DIFFERENT and judged.entry_id == "e1"
    assert judged.scope.tenant_id == "acme" and judged.messages[0].content[0].text == "How can I reset my password?"
    assert judged.similarity == pytest.approx(0.93) and not judged.served_text and not judged.fresh_text
    assert [(i.tenant_id, i.entry_id) for i in clients.invalidated] == [("acme", "e1")]
    with pytest.raises(NotFound):  # reported already
        await feedback.report("acme", "req-1")
    assert len(clients.judged) == 1


async def test_an_exact_hit_is_removed_not_counted_and_a_miss_is_not_remembered():
    clients = FakeClients()
    feedback = Feedback(clients, LocalMemory(60, 100))
    served(feedback, "What is 2 + 2?", "acme", "req-exact", cache_pb2.HIT_KIND_EXACT, "e2")
    miss = build_request("Something new", tenant="acme")
    feedback.on_answer(miss, gw.CompleteResponse(request_id="req-miss", cache_status=gw.CACHE_STATUS_MISS))
    out = await feedback.report("acme", "req-exact")
    assert (out.cache_status, out.entries_removed, out.verdict_counted) == (gw.CACHE_STATUS_EXACT_HIT, 1, False)
    assert clients.judged == []
    with pytest.raises(NotFound):
        await feedback.report("acme", "req-miss")


async def test_only_the_tenants_own_requests_and_only_while_remembered():
    now = [0.0]
    clients = FakeClients()
    feedback = Feedback(clients, LocalMemory(10, 2, clock=lambda: now[0]))
    served(feedback, "How can I reset my password?", "acme", "req-a", cache_pb2.HIT_KIND_SEMANTIC, "e1")
    with pytest.raises(NotFound):  # another tenant's request id: not found, not revealed
        await feedback.report("globex", "req-a")
    now[0] = 11.0
    with pytest.raises(NotFound):  # expired
        await feedback.report("acme", "req-a")
    for i in range(3):  # bounded: the oldest is forgotten
        served(feedback, f"Question {i}?", "acme", f"req-{i}", cache_pb2.HIT_KIND_SEMANTIC, f"e{i}")
    await feedback.settled()
    with pytest.raises(NotFound):
        await feedback.report("acme", "req-0")
    assert (await feedback.report("acme", "req-2")).verdict_counted
    assert clients.invalidated[0].tenant_id == "acme"


async def test_a_tenant_without_consent_has_its_entry_removed_and_nothing_counted():
    clients = FakeClients(consent=False)
    feedback = Feedback(clients, LocalMemory(60, 100))
    served(feedback, "How can I reset my password?", "acme", "req-1", cache_pb2.HIT_KIND_SEMANTIC, "e1")
    out = await feedback.report("acme", "req-1")
    assert (out.entries_removed, out.verdict_counted) == (1, False)


async def test_a_failed_removal_is_raised_and_its_retry_does_not_count_again():
    clients = FakeClients()
    feedback = Feedback(clients, LocalMemory(60, 100))
    served(feedback, "How can I reset my password?", "acme", "req-1", cache_pb2.HIT_KIND_SEMANTIC, "e1")
    clients.fail_invalidate = True
    with pytest.raises(Unavailable):
        await feedback.report("acme", "req-1")
    clients.fail_invalidate = False
    out = await feedback.report("acme", "req-1")
    assert (out.entries_removed, out.verdict_counted) == (1, True)
    assert len(clients.judged) == 1


async def test_redis_memory_keeps_tenants_apart_and_expires(redis_url):
    import asyncio
    import uuid

    from redis.asyncio import Redis

    from costmesh.gateway.feedback import RedisMemory

    redis = Redis.from_url(redis_url)
    memory = RedisMemory(redis, ttl_s=0.3, prefix=f"feedback-test-{uuid.uuid4().hex[:6]}")
    try:
        # a separator in a tenant or an id cannot make two requests share a key
        await memory.put("a:b", "c", {"tenant": "a:b", "entry_id": "e1"})
        assert await memory.get("a", "b:c") is None
        assert (await memory.get("a:b", "c"))["entry_id"] == "e1"
        assert await memory.take("a:b", "c") and not await memory.take("a:b", "c")
        await memory.put("acme", "r1", {"tenant": "acme", "entry_id": "e2"})
        await asyncio.sleep(0.5)
        assert await memory.get("acme", "r1") is None  # expired
    finally:
        await redis.aclose()


async def test_a_cheap_models_answer_reported_counts_as_a_worse_verdict_for_a_consenting_tenant(redis_url):
    """A routed answer (not from the cache) of a tier under the premium model's: a report counts a WORSE
    verdict of that tier in the tenant's routing ledger (real Redis), once; nothing is removed from the
    cache. Premium answers, pinned models and tenants without consent to routing checks are not remembered."""
    import json
    import uuid

    from redis.asyncio import Redis

    from costmesh.api.common.v1 import common_pb2 as common
    from costmesh.config import Env
    from costmesh.gateway.feedback import RoutedAnswers
    from costmesh.gateway.routing_quality import RoutingLedger, RoutingQualitySettings, tiers_below

    settings = RoutingQualitySettings.load(Env({
        "COSTMESH_ROUTER_TENANT_POLICIES": json.dumps({"acme": {"shadow_rate": 0.05}}),
        "COSTMESH_ROUTER_SHADOW_PREFIX": f"feedback-{uuid.uuid4().hex[:6]}"}))
    redis = Redis.from_url(redis_url)
    ledger = RoutingLedger(redis, settings, cheap_tiers=tiers_below(common.TIER_COMPLEX))
    clients = FakeClients()
    feedback = Feedback(clients, LocalMemory(60, 100),
                        routed=RoutedAnswers(ledger, "claude-sonnet-4-5", common.TIER_COMPLEX))

    def answered(tenant: str, request_id: str, tier: int, model: str, pinned: str = "") -> None:
        request = build_request("Summarise the French Revolution in two sentences.", tenant=tenant, model=pinned)
        feedback.on_answer(request, gw.CompleteResponse(request_id=request_id, text="An answer.", tier=tier,
                                                        model=model, cache_status=gw.CACHE_STATUS_MISS))

    try:
        answered("acme", "req-cheap", common.TIER_SIMPLE, "gpt-5-mini")
        answered("acme", "req-premium", common.TIER_COMPLEX, "claude-sonnet-4-5")
        answered("acme", "req-pinned", common.TIER_SIMPLE, "gpt-5-mini", pinned="gpt-5-mini")
        answered("globex", "req-other", common.TIER_SIMPLE, "gpt-5-mini")  # no consent to routing checks

        out = await feedback.report("acme", "req-cheap", "wrong date")
        assert (out.request_id, out.cache_status, out.entries_removed, out.verdict_counted) == (
            "req-cheap", gw.CACHE_STATUS_MISS, 0, True)
        estimate = await ledger.estimate("acme")
        simple = estimate.tiers["simple"]
        assert (simple.verdicts, simple.as_good, simple.total_verdicts) == (1, 0, 1)
        assert estimate.verdicts == 1 and estimate.cheap.quality_retained == 0.0
        assert clients.invalidated == [] and clients.judged == []  # the cache is not touched
        with pytest.raises(NotFound):  # reported already: counted once
            await feedback.report("acme", "req-cheap")
        for tenant, request_id in (("acme", "req-premium"), ("acme", "req-pinned"), ("globex", "req-other")):
            with pytest.raises(NotFound):
                await feedback.report(tenant, request_id)
        assert (await ledger.estimate("acme")).total_verdicts == 1
        assert (await ledger.estimate("globex")).total_verdicts == 0
    finally:
        await ledger.aclose()
        await redis.aclose()
