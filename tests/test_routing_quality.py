"""The routing ledger (issue 22) on a real Redis: verdicts and the tier mix counted per tenant, the
live quality kept with its Wilson lower bound, the threshold offset moved only after the minimum of
verdicts (down while under the target, back up while well over it), one move for concurrent
verdicts on two replicas, judged rows kept and trimmed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.gateway.routing_quality import (
    RoutingLedger,
    RoutingQualitySettings,
    TenantPolicy,
    parse_policies,
)
from costmesh.intervals import wilson_lower

CHEAP = ("trivial", "simple", "moderate")


@pytest.fixture
async def client(redis_url):
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


def ledger(client, **overrides) -> RoutingLedger:
    policies = {"acme": TenantPolicy(shadow_rate=1.0, keep_shadow_rows=True)}
    settings = RoutingQualitySettings(**{"target": 0.9, "min_verdicts": 4, "threshold_step": 0.05, "max_offset": 0.1,
                                         "prefix": f"test-{uuid.uuid4().hex[:8]}", "policies": policies,
                                         **overrides})
    return RoutingLedger(client, settings, cheap_tiers=CHEAP, flush_s=0.01)


async def test_verdicts_and_the_tier_mix_give_the_quality_kept_and_its_bound(client):
    book = ledger(client)
    for tier in ("simple", "simple", "simple", "complex"):
        book.count_served("acme", tier)
    await book.record("acme", "simple", as_good=True)
    estimate = await book.record("acme", "simple", as_good=False)
    assert (estimate.verdicts, estimate.cheap.as_good, estimate.tiers["simple"].served) == (2, 1, 3)
    assert estimate.cheap_share == pytest.approx(0.75)
    assert estimate.quality_retained == pytest.approx(1 - 0.75 * 0.5)
    assert estimate.lower_bound == pytest.approx(1 - 0.75 * (1 - wilson_lower(0.5, 2)))
    assert estimate.offset == 0.0 and estimate.moves == 0 and not estimate.under_target  # 2 < 4 verdicts
    assert estimate.tiers["simple"].quality_retained == 0.5 and estimate.tiers["moderate"].verdicts == 0


async def test_the_offset_falls_after_the_minimum_of_verdicts_then_counts_afresh(client):
    book = ledger(client)
    book.count_served("acme", "simple")
    for as_good in (True, False, True):
        estimate = await book.record("acme", "simple", as_good)
    assert estimate.offset == 0.0  # 3 verdicts: under the minimum of 4
    estimate = await book.record("acme", "trivial", False)  # the 4th: bound under 0.9
    assert estimate.offset == pytest.approx(-0.05) and estimate.moves == 1
    assert (estimate.verdicts, estimate.total_verdicts, estimate.cheap.total_as_good) == (0, 4, 2)
    assert estimate.tiers["simple"].served == 0  # the tier mix starts afresh too
    for _ in range(4):
        estimate = await book.record("acme", "simple", False)
    assert estimate.offset == pytest.approx(-0.1)  # the floor: -max_offset
    for _ in range(4):
        estimate = await book.record("acme", "simple", False)
    assert estimate.offset == pytest.approx(-0.1) and estimate.moves == 2 and estimate.under_target
    assert book.offset_for("acme") == pytest.approx(-0.1)  # the local copy the requests read


async def test_the_offset_rises_back_while_the_bound_is_well_over_the_target(client):
    book = ledger(client, target=0.5)
    for _ in range(4):
        await book.record("acme", "simple", False)
    assert (await book.estimate("acme")).offset == pytest.approx(-0.05)
    for _ in range(18):
        book.count_served("acme", "complex")
    for _ in range(2):
        book.count_served("acme", "simple")
    for _ in range(4):  # 4 of 4 as good on a tenth of the traffic: lower bound ~0.96 > 0.75
        estimate = await book.record("acme", "simple", True)
    assert estimate.offset == 0.0 and estimate.moves == 2
    for _ in range(4):
        estimate = await book.record("acme", "simple", True)
    assert estimate.offset == 0.0 and estimate.moves == 2  # never above the calibrated threshold


async def test_two_replicas_move_the_offset_once_for_concurrent_verdicts(client):
    first = ledger(client)
    second = RoutingLedger(client, first.settings, cheap_tiers=CHEAP)
    await asyncio.gather(*(replica.record("acme", "simple", False) for replica in (first, second) * 2))
    estimate = await second.estimate("acme")
    assert (estimate.offset, estimate.moves, estimate.total_verdicts) == (pytest.approx(-0.05), 1, 4)


async def test_recalibration_off_counts_only_and_no_consent_reads_nothing(client):
    book = ledger(client, recalibrate=False)
    for _ in range(6):
        estimate = await book.record("acme", "simple", False)
    assert estimate.offset == 0.0 and estimate.under_target
    assert book.offset_for("globex") == 0.0 and "globex" not in book._refreshing  # no consent: no Redis read


async def test_judged_rows_are_kept_newest_first_and_trimmed(client):
    book = ledger(client, max_rows=2)
    for i in range(3):
        await book.keep_row("acme", {"prompt": f"q{i}", "as_good": i % 2 == 0})
    assert [row["prompt"] for row in await book.rows("acme")] == ["q2", "q1"]
    assert [e.tenant_id for e in await book.estimates()] == []  # rows alone are no estimate


def test_settings_and_policies_from_env():
    env = Env({"COSTMESH_ROUTER_QUALITY_TARGET": "0.9", "COSTMESH_ROUTER_SHADOW_MIN_VERDICTS": "50",
               "COSTMESH_ROUTER_TENANT_POLICIES": '{"acme": {"shadow_rate": 0.05, "keep_shadow_rows": true}}'})
    settings = RoutingQualitySettings.load(env)
    assert (settings.target, settings.min_verdicts, settings.any_consent) == (0.9, 50, True)
    assert settings.policy("acme") == TenantPolicy(0.05, True) and settings.policy("globex").shadow_rate == 0
    assert not RoutingQualitySettings.load(Env({})).any_consent  # off by default
    for raw in ('{"acme": {"shadow_rate": 2}}', '{"acme": {"rate": 0.1}}', "[1]", "{"):
        with pytest.raises(ConfigError):
            parse_policies(raw)
    with pytest.raises(ConfigError):
        RoutingQualitySettings.load(Env({"COSTMESH_ROUTER_QUALITY_TARGET": "1.5"}))
