"""Shadow checks on the cache's side (issue 22): hits drawn for consenting tenants only, verdicts
judged by the cross-encoder and counted in Redis, the live estimate with its Wilson bound in
GetStats, the tenant's threshold moved by it (and then applied to its lookups), the labelled
pairs kept only with consent. Real gRPC on port 0, real Redis, the packaged verifier."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.cache.v1 import cache_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.config import Env
from costmesh.embeddings import Embedder
from costmesh.intervals import wilson_lower, wilson_upper
from costmesh.rpc.server import ServiceSpec, start_service
from costmesh.services.cache.service import make_mount
from costmesh.services.cache.shadow import LiveEstimate, ShadowSettings

MONDAY, SUNDAY = "What time does the store open on Monday?", "What time does the store open on Sunday?"
MONDAY_ANSWER, SUNDAY_ANSWER = "The store opens at 9 am on Mondays.", "The store is closed on Sundays."
RESET, RESET_AGAIN = "How do I reset my password?", "How can I reset my password?"
RESET_ANSWER = "Open Settings, choose Security, then Reset password."


@pytest.fixture(scope="module")
async def embedder():
    model = await asyncio.to_thread(Embedder)
    yield model
    await model.aclose()


def tenant_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def tenants() -> dict[str, str]:
    return {"consenting": tenant_name("consenting"), "counted": tenant_name("counted"),
            "refusing": tenant_name("refusing")}


@pytest.fixture(scope="module")
async def cache(redis_url, embedder, tenants):
    """The verifier forced low (bound 0.5: threshold 0.01 or under, so the Monday/Sunday trap is served)
    while the live bound is 5%; the threshold moves after 3 verdicts, by 0.1."""
    policies = {tenants["consenting"]: {"shadow_rate": 1.0, "keep_shadow_pairs": True},
                tenants["counted"]: {"shadow_rate": 1.0}}
    env = {"COSTMESH_MESH_AUTH": "off", "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "warning",
           "COSTMESH_CACHE_INDEX_PREFIX": f"shadow-{uuid.uuid4().hex[:6]}",
           "COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "0.5", "COSTMESH_CACHE_SHADOW_MAX_FALSE_HIT_RATE": "0.05",
           "COSTMESH_CACHE_SHADOW_MIN_VERDICTS": "3", "COSTMESH_CACHE_SHADOW_THRESHOLD_STEP": "0.1",
           "COSTMESH_CACHE_TENANT_POLICIES": json.dumps(policies)}
    service = await start_service(ServiceSpec("cache", 0, make_mount(embedder)), Env(env), port=0)
    channel = grpc.aio.insecure_channel(service.address)
    yield cache_pb2_grpc.CacheServiceStub(channel)
    await channel.close()
    await service.stop(0.5)


def conversation(question: str) -> list[common.Message]:
    return [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=question)])]


async def store(stub, tenant: str, question: str, answer: str) -> None:
    stored = await stub.Store(pb.StoreRequest(scope=pb.Scope(tenant_id=tenant), messages=conversation(question),
                                              text=answer, model="gpt-5-mini", finish_reason="stop",
                                              quality_passed=True))
    assert stored.stored, stored.reason


async def lookup(stub, tenant: str, question: str) -> pb.LookupResponse:
    return await stub.Lookup(pb.LookupRequest(scope=pb.Scope(tenant_id=tenant), messages=conversation(question)))


async def judge(stub, tenant: str, hit: pb.LookupResponse, question: str, fresh: str,
                **extra) -> pb.JudgeShadowResponse:
    return await stub.JudgeShadow(pb.JudgeShadowRequest(
        scope=pb.Scope(tenant_id=tenant), entry_id=hit.entry_id, messages=conversation(question),
        served_text=hit.text, fresh_text=fresh, similarity=hit.similarity, **extra))


async def test_a_trap_judged_different_moves_the_estimate_then_the_threshold(cache, tenants):
    tenant = tenants["consenting"]
    await store(cache, tenant, MONDAY, MONDAY_ANSWER)
    await store(cache, tenant, RESET, RESET_ANSWER)

    paraphrase = await lookup(cache, tenant, RESET_AGAIN)
    assert paraphrase.kind == pb.HIT_KIND_SEMANTIC and paraphrase.shadow  # share 1.0: every hit drawn
    same = await judge(cache, tenant, paraphrase, RESET_AGAIN, "Go to Settings > Security and pick Reset password.")
    assert same.verdict == pb.SHADOW_VERDICT_SAME and same.judge == "cross-encoder" and same.score > 0.5
    assert same.live.verdicts == 1 and same.live.false_hits == 0
    calibrated = same.live.calibrated_threshold
    assert calibrated <= 0.01 and same.live.threshold == pytest.approx(calibrated)  # the table's lowest steps

    estimates = []
    for _ in range(2):
        trap = await lookup(cache, tenant, SUNDAY)
        assert trap.kind == pb.HIT_KIND_SEMANTIC and trap.text == MONDAY_ANSWER and trap.shadow  # a false hit served
        judged = await judge(cache, tenant, trap, SUNDAY, SUNDAY_ANSWER)
        assert judged.verdict == pb.SHADOW_VERDICT_DIFFERENT and judged.score < 0.5
        estimates.append(judged.live)
    first, moved = estimates
    assert (first.verdicts, first.false_hits) == (2, 1)
    assert first.false_hit_rate == pytest.approx(0.5)
    assert first.upper_bound == pytest.approx(wilson_upper(0.5, 2)) and first.upper_bound > 0.05
    assert first.threshold == pytest.approx(calibrated)  # 2 verdicts: under the minimum of 3
    # the third verdict: bound over 5% with 3 verdicts -> the threshold rises one step, counts start afresh
    assert moved.threshold == pytest.approx(calibrated + 0.1) and moved.threshold_moves == 1
    assert (moved.verdicts, moved.total_verdicts, moved.total_false_hits) == (0, 3, 2)

    refused = await lookup(cache, tenant, SUNDAY)  # the trap's score (about 0.06) is now under the threshold
    assert refused.kind == pb.HIT_KIND_MISS
    still = await lookup(cache, tenant, RESET_AGAIN)  # the paraphrase (about 0.98) still hits
    assert still.kind == pb.HIT_KIND_SEMANTIC

    stats = await cache.GetStats(pb.GetStatsRequest(tenant_id=tenant))
    assert stats.live.tenant_id == tenant and stats.live.total_false_hits == 2
    assert stats.live.threshold == pytest.approx(calibrated + 0.1)
    assert stats.live.max_false_hit_rate == pytest.approx(0.05) and stats.live.min_verdicts == 3
    assert not (await cache.GetStats(pb.GetStatsRequest())).HasField("live")


async def test_a_caller_verdict_is_counted_and_pairs_are_kept_only_with_consent(cache, tenants, redis_url):
    counted = tenants["counted"]  # consented to checks, not to keeping pairs
    await store(cache, counted, RESET, RESET_ANSWER)
    hit = await lookup(cache, counted, RESET_AGAIN)
    assert hit.shadow
    judged = await judge(cache, counted, hit, RESET_AGAIN, "Something else entirely.",
                         verdict=pb.SHADOW_VERDICT_DIFFERENT)
    assert judged.judge == "caller" and judged.verdict == pb.SHADOW_VERDICT_DIFFERENT
    assert judged.live.false_hits == 1 and judged.judge_cost_usd == 0

    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in client.scan_iter(match="shadow-*:shadow-pairs:*")]
        pairs = [json.loads(line) for key in keys for line in await client.lrange(key, 0, -1)]
    finally:
        await client.aclose()
    assert pairs and all(p["cached_query"] in (MONDAY, RESET) for p in pairs)
    assert {p["query"] for p in pairs} <= {RESET_AGAIN, SUNDAY}  # the consenting tenant's only
    assert {p["same"] for p in pairs} == {True, False}


async def test_a_tenant_that_did_not_consent_is_never_drawn_nor_judged(cache, tenants):
    tenant = tenants["refusing"]
    await store(cache, tenant, RESET, RESET_ANSWER)
    for _ in range(3):
        hit = await lookup(cache, tenant, RESET_AGAIN)
        assert hit.kind == pb.HIT_KIND_SEMANTIC and not hit.shadow
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await judge(cache, tenant, hit, RESET_AGAIN, "Anything.")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_estimate_is_a_one_sided_wilson_bound():
    estimate = LiveEstimate("t", verdicts=100, false_hits=2, max_false_hit_rate=0.05, min_verdicts=100,
                            raise_when="upper")
    assert estimate.false_hit_rate == 0.02
    assert estimate.upper_bound == pytest.approx(wilson_upper(0.02, 100)) and estimate.over_bound
    # the default rule reads the lower bound: 2 of 100 is not clearly over 5%, 12 of 100 is
    assert LiveEstimate("t", verdicts=100, false_hits=2, max_false_hit_rate=0.05).raise_bound < 0.05
    clearly = LiveEstimate("t", verdicts=100, false_hits=12, max_false_hit_rate=0.05, min_verdicts=100)
    assert clearly.raise_bound == pytest.approx(wilson_lower(0.12, 100)) and clearly.over_bound
    assert LiveEstimate("t", verdicts=100, false_hits=1, max_false_hit_rate=0.05).upper_bound < 0.05
    assert LiveEstimate("t").upper_bound == 1.0 and not LiveEstimate("t", min_verdicts=1).over_bound
    assert ShadowSettings.load({}).resolved(None, 0.03).max_false_hit_rate == 0.03
    assert ShadowSettings.load({}).resolved(0.9, 0.03).max_false_hit_rate == pytest.approx(0.1)


def test_train_verifier_reads_the_kept_pairs_from_redis_or_a_file(redis_url, tmp_path):
    """`costmesh train-verifier --from-records` rows: the question, the served entry's question, the verdict
    (after the tests above kept the consenting tenant's pairs)."""
    from costmesh.tooling.verification.shadow_pairs import load_shadow_pairs

    rows = load_shadow_pairs(redis_url)
    assert {"a": SUNDAY, "b": MONDAY, "duplicate": False} in rows
    assert {"a": RESET_AGAIN, "b": RESET, "duplicate": True} in rows
    exported = tmp_path / "pairs.jsonl"
    exported.write_text(json.dumps({"query": SUNDAY, "cached_query": MONDAY, "same": False}) + "\nnot json\n")
    assert load_shadow_pairs(str(exported)) == [{"a": SUNDAY, "b": MONDAY, "duplicate": False}]


async def _ledger_after(redis_url, raise_when: str, false_hits: int, verdicts: int = 20) -> LiveEstimate:
    """A ledger on real Redis (calibrated 0.5, maximum 5%, minimum `verdicts`, step 0.1) after
    `verdicts` verdicts, the first `false_hits` of them judged different."""
    from redis.asyncio import Redis

    from costmesh.services.cache.shadow import ShadowLedger

    client = Redis.from_url(redis_url)

    async def run(operation, admin=False):
        return await operation()

    settings = ShadowSettings(max_false_hit_rate=0.05, min_verdicts=verdicts, threshold_step=0.1, raise_when=raise_when)
    ledger = ShadowLedger(client, run, settings, prefix=f"rule-{uuid.uuid4().hex[:6]}", calibrated=0.5)
    try:
        for i in range(verdicts):
            estimate = await ledger.record("tenant", different=i < false_hits)
    finally:
        await ledger.aclose()
        await client.aclose()
    return estimate


async def test_the_upper_rule_raises_the_threshold_unless_the_rate_is_clearly_under_the_maximum(redis_url):
    # 2 of 20 (10%): the upper bound 26% is over 5%, so the threshold rises (though 5% may still hold)
    moved = await _ledger_after(redis_url, "upper", false_hits=2)
    assert moved.threshold == pytest.approx(0.6) and moved.threshold_moves == 1 and moved.verdicts == 0


async def test_the_lower_rule_raises_it_only_when_the_rate_is_clearly_over_the_maximum(redis_url):
    # 2 of 20: the lower bound (3.4%) is under 5%, nothing shows the rate is over it: no move
    held = await _ledger_after(redis_url, "lower", false_hits=2)
    assert wilson_lower(0.1, 20) < 0.05 < held.upper_bound
    assert held.threshold == pytest.approx(0.5) and held.threshold_moves == 0 and held.verdicts == 20
    # 4 of 20: the lower bound (9.3%) is over 5%: the threshold rises a step, the counts start afresh
    moved = await _ledger_after(redis_url, "lower", false_hits=4)
    assert wilson_lower(0.2, 20) > 0.05
    assert moved.threshold == pytest.approx(0.6) and moved.threshold_moves == 1 and moved.verdicts == 0


def test_the_raise_rule_is_read_from_the_environment():
    assert ShadowSettings.load({}).raise_when == "lower"
    assert ShadowSettings.load({"COSTMESH_CACHE_SHADOW_RAISE_WHEN": "upper"}).raise_when == "upper"
    with pytest.raises(Exception, match="COSTMESH_CACHE_SHADOW_RAISE_WHEN"):
        ShadowSettings.load({"COSTMESH_CACHE_SHADOW_RAISE_WHEN": "sometimes"})


async def test_the_maximum_defaults_to_the_share_of_wrong_hits_the_calibration_accepted(redis_url):
    """Unset, COSTMESH_CACHE_SHADOW_MAX_FALSE_HIT_RATE is 1 - the verifier's calibrated precision (the
    checked hits' scale: the calibration's own hits were that often wrong); set, it is the operator's."""
    from redis.asyncio import Redis

    from costmesh.services.cache.shadow import ShadowLedger

    client = Redis.from_url(redis_url)

    async def run(operation, admin=False):
        return await operation()

    try:
        derived = ShadowLedger(client, run, ShadowSettings.load({}), prefix="p", calibrated=0.755,
                               calibrated_precision=0.895)
        assert derived.settings.max_false_hit_rate == pytest.approx(0.105)
        assert (await derived.estimate(f"t-{uuid.uuid4().hex[:6]}")).max_false_hit_rate == pytest.approx(0.105)
        told = ShadowSettings.load({"COSTMESH_CACHE_SHADOW_MAX_FALSE_HIT_RATE": "0.05"})
        assert ShadowLedger(client, run, told, prefix="p", calibrated=0.755,
                            calibrated_precision=0.895).settings.max_false_hit_rate == 0.05
        # a verifier without a calibration (cosine, rules): the cache's own bound
        assert ShadowLedger(client, run, ShadowSettings.load({}), prefix="p",
                            calibrated=None, fallback_rate=0.05).settings.max_false_hit_rate == 0.05
    finally:
        await client.aclose()
