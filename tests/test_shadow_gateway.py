"""The gateway's shadow checks on their own (issue 22): only hits the cache drew are checked,
after their answer and never holding it up; the queue and the concurrency are bounded, a full
queue drops and counts; every check becomes its own cost line. Fake mesh clients, no servers."""

from __future__ import annotations

import asyncio

import pytest

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.gateway.cache_answers import cache_scope, hit_response
from costmesh.gateway.shadow import ShadowChecks, ShadowSettings
from costmesh.tooling.mesh_client import build_request


class FakeClients:
    def __init__(self):
        self.lookup_observers = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_running = 0
        self.executed: list[router_pb2.ExecuteRequest] = []
        self.judged: list[cache_pb2.JudgeShadowRequest] = []

    async def classify(self, request, timeout):
        return classifier_pb2.ClassifyResponse(tier=common.TIER_SIMPLE, score=0.3)

    async def execute(self, request, timeout):
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.release.wait()
        self.running -= 1
        self.executed.append(request)
        return router_pb2.ExecuteResponse(text="a fresh answer", model="gpt-5-mini", provider="openai",
                                          cost=common.CostBreakdown(total_usd=0.002),
                                          usage=common.TokenUsage(input_tokens=10, output_tokens=5))

    async def judge_shadow(self, request, timeout):
        self.judged.append(request)
        return cache_pb2.JudgeShadowResponse(verdict=cache_pb2.SHADOW_VERDICT_DIFFERENT, judge_cost_usd=0.0001)


def hit(request: gw.CompleteRequest, shadow: bool,
        entry: str) -> tuple[cache_pb2.LookupRequest, cache_pb2.LookupResponse]:
    """The lookup the pipeline makes for `request` answered with a semantic hit, seen by the checks."""
    lookup = cache_pb2.LookupRequest(scope=cache_scope(request), messages=request.messages, sampling=request.sampling)
    response = cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_SEMANTIC, text="the cached answer", entry_id=entry,
                                        similarity=0.97, shadow=shadow)
    return lookup, response


async def test_drawn_hits_are_checked_in_the_background_within_bounds():
    clients, records = FakeClients(), []
    checks = ShadowChecks(clients, ShadowSettings(queue=1, concurrency=1), records=records.append)
    requests = [build_request(f"question {i}?", tenant="acme") for i in range(4)]
    for i, request in enumerate(requests):
        lookup, response = hit(request, shadow=i != 3, entry=f"e{i}")  # the cache drew 0, 1 and 2, not 3
        checks.seen_lookup(lookup, response)
        answer = hit_response(f"r{i}", response)
        checks.on_answer(request, answer)  # returns at once: nothing awaited on the answer's path
        await asyncio.sleep(0.01)  # the next request comes later: a worker has taken the first check
    # one runs, one waits, the third drawn finds the queue full; the undrawn one never gets in
    assert (checks.counters.queued, checks.counters.dropped, clients.most_running) == (2, 1, 1)
    assert checks.pending == 1 and not records
    clients.release.set()
    await checks.drain(5)
    assert clients.most_running == 1 and checks.counters.done == 2 and checks.counters.different == 2
    assert [r.entry_id for r in clients.judged] == ["e0", "e1"]
    assert all(r.served_text == "the cached answer" and r.fresh_text == "a fresh answer" for r in clients.judged)
    assert [e.tier for e in clients.executed] == [common.TIER_SIMPLE] * 2  # classified as a miss would be
    assert [(r.kind, r.request_id, r.verdict) for r in records] == [("shadow", "r0", "different"),
                                                                      ("shadow", "r1", "different")]
    assert records[0].cost_usd == pytest.approx(0.0021) and records[0].judge_usd == 0.0001
    assert records[0].baseline_usd == 0 and records[0].saving_usd == -records[0].cost_usd
    await checks.aclose()


async def test_exact_hits_misses_and_unseen_lookups_are_not_checked():
    clients = FakeClients()
    checks = ShadowChecks(clients, ShadowSettings())
    request = build_request("question?", tenant="acme")
    lookup, response = hit(request, shadow=True, entry="e")
    checks.seen_lookup(lookup, response)
    checks.on_answer(request, gw.CompleteResponse(cache_status=gw.CACHE_STATUS_MISS))
    checks.on_answer(build_request("another question?", tenant="acme"),
                     gw.CompleteResponse(cache_status=gw.CACHE_STATUS_SEMANTIC_HIT))
    exact = cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_EXACT, text="x", shadow=True)
    checks.seen_lookup(lookup, exact)
    assert checks.counters.queued == 0
    await checks.aclose()


def test_settings_come_from_the_environment_and_are_checked():
    from costmesh.errors import ConfigError

    settings = ShadowSettings.load({"COSTMESH_GATEWAY_SHADOW_QUEUE": "8",
                                    "COSTMESH_GATEWAY_SHADOW_JUDGE": "llm",
                                    "COSTMESH_GATEWAY_SHADOW_JUDGE_MODEL": "gpt-5-nano"})
    assert (settings.queue, settings.judge, settings.judge_model) == (8, "llm", "gpt-5-nano")
    with pytest.raises(ConfigError, match="JUDGE_MODEL"):
        ShadowSettings.load({"COSTMESH_GATEWAY_SHADOW_JUDGE": "llm"})
    with pytest.raises(ConfigError, match="QUEUE"):
        ShadowSettings.load({"COSTMESH_GATEWAY_SHADOW_QUEUE": "0"})
