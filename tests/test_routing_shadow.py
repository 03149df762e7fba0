"""The gateway's routing checks on their own (issue 22): only a consenting tenant's cheap answers that
the cascade chose are checked, after their answer; the premium model is asked pinned, the judge's
GOOD or WORSE is counted in the tenant's ledger (real Redis), the row kept with consent, and each
check is its own cost line of the routing layer. Fake mesh clients, no servers."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from redis.asyncio import Redis

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.gateway.routing_quality import RoutingLedger, RoutingQualitySettings, TenantPolicy
from costmesh.gateway.routing_shadow import RoutingChecks, RoutingCheckSettings
from costmesh.judge_prompt import read_quality_prompt
from costmesh.tooling.mesh_client import build_request

PREMIUM = "claude-opus-4-5"
CHEAP_ANSWERS = {"What is 6 x 7?": "42", "Name a prime over 10.": "It is 12."}


class FakeRouter:
    """The premium model answers; the judge says GOOD when the candidate is the premium answer's number."""

    def __init__(self, judge_reply: str | None = None):
        self.executed: list[router_pb2.ExecuteRequest] = []
        self.judge_reply = judge_reply

    async def execute(self, request, timeout):
        self.executed.append(request)
        prompt = request.messages[-1].content[0].text
        judged = read_quality_prompt(prompt)
        if judged is not None:
            _question, candidate, reference = judged
            text = self.judge_reply or ("GOOD" if candidate.split()[-1].strip(".") in reference else "WORSE")
            return router_pb2.ExecuteResponse(text=text, model=request.model,
                                              cost=common.CostBreakdown(total_usd=0.0001))
        answer = {"What is 6 x 7?": "6 x 7 = 42", "Name a prime over 10.": "11 is a prime over 10."}[prompt]
        return router_pb2.ExecuteResponse(text=answer, model=PREMIUM, provider="anthropic", tier=common.TIER_COMPLEX,
                                          cost=common.CostBreakdown(total_usd=0.003),
                                          usage=common.TokenUsage(input_tokens=20, output_tokens=9))


def answered(question: str, tier: int = common.TIER_SIMPLE, model: str = "gpt-5-mini",
             cache: int = gw.CACHE_STATUS_MISS) -> gw.CompleteResponse:
    return gw.CompleteResponse(request_id=uuid.uuid4().hex, text=CHEAP_ANSWERS.get(question, "an answer"),
                               model=model, tier=tier, cache_status=cache, cached=cache != gw.CACHE_STATUS_MISS,
                               complexity_score=0.12)


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def checks_with(redis, router, records, **policy) -> RoutingChecks:
    settings = RoutingQualitySettings(
        target=0.9, min_verdicts=100, prefix=f"test-{uuid.uuid4().hex[:8]}",
        policies={"acme": TenantPolicy(shadow_rate=1.0, **policy), "sampled": TenantPolicy(shadow_rate=0.5)})
    ledger = RoutingLedger(redis, settings, cheap_tiers=("trivial", "simple", "moderate"), flush_s=0.01)
    return RoutingChecks(router, ledger, RoutingCheckSettings(PREMIUM, common.TIER_COMPLEX, "gpt-5-nano"),
                         records=records.append, rng=random.Random(7))


async def test_a_consenting_tenants_cheap_answers_are_checked_against_the_premium_model(redis):
    router, records = FakeRouter(), []
    checks = checks_with(redis, router, records, keep_shadow_rows=True)
    for question in CHEAP_ANSWERS:
        request = build_request(question, tenant="acme")
        checks.on_answer(request, answered(question))  # returns at once: the check runs in the background
    assert not router.executed and checks.counters.queued == 2
    await checks.drain(5)
    premium_calls = [r for r in router.executed if r.model == PREMIUM]
    judge_calls = [r for r in router.executed if r.model == "gpt-5-nano"]
    assert len(premium_calls) == 2 and len(judge_calls) == 2 and all(r.tenant_id == "acme" for r in router.executed)
    assert (checks.counters.done, checks.counters_by_verdict) == (2, {"as_good": 1, "worse": 1})
    estimate = await checks.ledger.estimate("acme")
    assert (estimate.verdicts, estimate.cheap.as_good, estimate.tiers["simple"].served) == (2, 1, 2)
    quality = await checks.quality_pb("acme")
    assert quality.verdicts == 2 and quality.quality_retained == pytest.approx(0.5)
    assert [t.tier for t in quality.tiers] == [common.TIER_SIMPLE] and quality.tiers[0].as_good == 1
    rows = await checks.ledger.rows("acme")
    assert sorted((r["prompt"], r["as_good"]) for r in rows) == [("Name a prime over 10.", False),
                                                                  ("What is 6 x 7?", True)]
    assert {r["weak_response"] for r in rows} == set(CHEAP_ANSWERS.values())
    # each check its own line of the routing layer: the premium call and the judge's
    assert sorted(r.verdict for r in records) == ["as_good", "worse"]
    for record in records:
        assert (record.kind, record.check, record.checked_tier) == ("shadow", "routing", "simple")
        assert record.model == PREMIUM
        assert record.cost_usd == pytest.approx(0.0031) and record.judge_usd == pytest.approx(0.0001)
        assert record.baseline_usd == 0 and record.savings["routing"] == -record.cost_usd
        assert record.savings["cache"] == 0 and record.score == pytest.approx(0.12)
    assert checks.counters.cost_usd == pytest.approx(0.0062)
    await checks.aclose()


async def test_only_the_cascades_cheap_answers_of_consenting_tenants_are_checked(redis):
    router, records = FakeRouter(), []
    checks = checks_with(redis, router, records)
    question = "What is 6 x 7?"
    pinned = build_request(question, tenant="acme")
    pinned.routing.model = "gpt-5-mini"
    capped = build_request(question, tenant="acme")
    capped.routing.max_tier = common.TIER_SIMPLE
    tools = build_request(question, tenant="acme")
    tools.tools.tools.add(name="lookup")
    for request, response in (
        (build_request(question, tenant="globex"), answered(question)),  # did not consent
        (pinned, answered(question)), (capped, answered(question)), (tools, answered(question)),
        (build_request(question, tenant="acme"), answered(question, common.TIER_COMPLEX, PREMIUM)),  # premium
        (build_request(question, tenant="acme"), answered(question, cache=gw.CACHE_STATUS_SEMANTIC_HIT)),
    ):
        checks.on_answer(request, response)
    await checks.drain(5)
    assert checks.counters.queued == 0 and not router.executed and not records
    assert checks.offset_for("globex") == 0.0 and await checks.quality_pb("globex") is None
    await checks.ledger.flush()
    served = (await checks.ledger.estimate("acme")).tiers
    assert served["complex"].served == 1 and served["simple"].served == 0  # the premium answer is in the mix
    for _ in range(40):  # a tenant at 50% gets about half of its cheap answers checked
        checks.on_answer(build_request(question, tenant="sampled"), answered(question))
    assert 10 <= checks.counters.queued <= 30
    await checks.aclose()


async def test_a_judge_that_answers_neither_is_billed_and_not_counted(redis):
    router, records = FakeRouter(judge_reply="I cannot tell"), []
    checks = checks_with(redis, router, records)
    checks.on_answer(build_request("What is 6 x 7?", tenant="acme"), answered("What is 6 x 7?"))
    await checks.drain(5)
    assert (checks.counters.done, checks.counters.failed) == (0, 1)
    assert [(r.verdict, r.judge_usd) for r in records] == [("", pytest.approx(0.0001))]
    assert (await checks.ledger.estimate("acme")).total_verdicts == 0
    await checks.aclose()


async def test_the_answer_never_waits_for_a_check(redis):
    class Slow(FakeRouter):
        async def execute(self, request, timeout):
            await asyncio.sleep(10)

    checks = checks_with(redis, Slow(), [])
    started = asyncio.get_running_loop().time()
    for _ in range(100):
        checks.on_answer(build_request("What is 6 x 7?", tenant="acme"), answered("What is 6 x 7?"))
    assert asyncio.get_running_loop().time() - started < 0.5
    assert checks.counters.queued == 64 and checks.counters.dropped == 36  # the queue holds 64; the rest dropped
    await checks.aclose(grace_s=0.1)
