"""Per-tenant and per-key limits in Redis (gateway/limits.py), against a real Redis: requests and
tokens per minute, USD budgets reserved before a call and settled after, 32 concurrent requests
never overrunning a budget, and Redis down."""

from __future__ import annotations

import asyncio
import calendar
import uuid

import pytest
from redis.asyncio import Redis

from costmesh.errors import InvalidRequest, LimitExceeded, RateLimited, Unavailable
from costmesh.gateway.limits import Limiter, Limits, Periods


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def tenant() -> str:
    return f"limits-{uuid.uuid4().hex[:8]}"


async def test_no_limits_admit_everything(redis, tenant):
    limiter = Limiter(redis)
    for _ in range(20):
        reservation = await limiter.admit(tenant, "k1", tokens=10_000, max_micro_usd=10**9)
        await limiter.settle(reservation, 10, 5)
    assert await limiter.usage(tenant) == {"usd_today": 0.0, "usd_this_month": 0.0}


async def test_requests_per_minute_with_retry_after(redis, tenant):
    limiter = Limiter(redis)
    await limiter.set(tenant, Limits(rpm=3))
    for _ in range(3):
        await limiter.admit(tenant, "", 0, 0)
    with pytest.raises(LimitExceeded, match="requests per minute") as error:
        await limiter.admit(tenant, "", 0, 0)
    assert isinstance(error.value, RateLimited)
    assert 15 <= error.value.retry_after_s <= 20.1  # one request refills in 60/3 s


async def test_tokens_per_minute_are_settled_to_what_was_used(redis, tenant):
    limiter = Limiter(redis)
    await limiter.set(tenant, Limits(tpm=1000))
    first = await limiter.admit(tenant, "", tokens=600, max_micro_usd=0)
    with pytest.raises(LimitExceeded, match="tokens per minute") as error:
        await limiter.admit(tenant, "", tokens=600, max_micro_usd=0)
    assert 10 <= error.value.retry_after_s <= 12.1  # 200 tokens at 1000/min
    await limiter.settle(first, tokens=100, micro_usd=0)  # it used 100 of the 600 it reserved
    await limiter.admit(tenant, "", tokens=600, max_micro_usd=0)
    big = await limiter.admit(f"{tenant}-other", "", tokens=10**6, max_micro_usd=0)  # no limit there
    assert big is not None


async def test_a_budget_is_reserved_before_and_settled_after(redis, tenant):
    limiter = Limiter(redis)
    await limiter.set(tenant, Limits(usd_per_day=0.001))  # 1,000 micro-USD
    reservations = [await limiter.admit(tenant, "", 0, 400) for _ in range(2)]
    with pytest.raises(LimitExceeded, match="USD per day") as error:
        await limiter.admit(tenant, "", 0, 400)  # 800 reserved + 400 > 1,000
    assert 0 < error.value.retry_after_s <= 86400  # the day's end
    for reservation in reservations:
        await limiter.settle(reservation, 0, 100)  # each cost 100
    assert (await limiter.usage(tenant))["usd_today"] == pytest.approx(0.0002)
    await limiter.admit(tenant, "", 0, 400)


async def test_32_concurrent_requests_never_overrun_the_budget(redis_url, tenant):
    limiters = [Limiter(Redis.from_url(redis_url)) for _ in range(4)]
    await limiters[0].set(tenant, Limits(usd_per_month=0.01))  # 10,000 micro-USD; requests of at most 700

    async def one(i: int) -> int:
        limiter = limiters[i % len(limiters)]  # four gateway replicas
        try:
            reservation = await limiter.admit(tenant, "", 0, 700)
        except LimitExceeded:
            return 0
        await asyncio.sleep(0.01)
        await limiter.settle(reservation, 0, 650)
        return 650

    spent = sum(await asyncio.gather(*(one(i) for i in range(32))))
    assert 0 < spent <= 10_000
    assert (await limiters[0].usage(tenant))["usd_this_month"] * 1e6 == pytest.approx(spent)
    for limiter in limiters:
        await limiter._redis.aclose()


async def test_key_limits_apart_from_the_tenants(redis, tenant):
    limiter = Limiter(redis)
    await limiter.set(tenant, Limits(rpm=100))
    await limiter.set(tenant, Limits(rpm=1), key_id="web")
    await limiter.admit(tenant, "web", 0, 0)
    with pytest.raises(LimitExceeded, match="key 'web'"):
        await limiter.admit(tenant, "web", 0, 0)
    await limiter.admit(tenant, "batch", 0, 0)  # another key of the tenant
    assert await limiter.get(tenant, "web") == Limits(rpm=1)
    await limiter.set(tenant, Limits(), key_id="web")  # cleared
    await limiter.admit(tenant, "web", 0, 0)


def test_settings_and_periods():
    assert Limits.from_fields({"rpm": "5", "day_micro_usd": "2500000"}) == Limits(rpm=5, usd_per_day=2.5)
    assert Limits(usd_per_month=1.25).to_fields() == {"month_micro_usd": "1250000"}
    with pytest.raises(InvalidRequest, match="rpm"):
        Limits(rpm=-1)
    now = calendar.timegm((2026, 2, 28, 23, 0, 0))
    periods = Periods.at(now)
    assert (periods.day, periods.month) == ("20260228", "202602")
    assert periods.day_left_s == 3600 and periods.month_left_s == 3600


async def test_redis_down_fails_open_or_closed():
    down = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    assert await Limiter(down).admit("t", "", 1, 1) is None  # the mesh keeps serving
    with pytest.raises(Unavailable):
        await Limiter(down, fail_open=False).admit("t", "", 1, 1)
    await Limiter(down).settle(None, 1, 1)
    await down.aclose()


def test_the_limits_command(redis_url, tenant, capsys):
    from costmesh.tooling.cli import main

    assert main(["limits", "--redis-url", redis_url, "set", "--tenant", tenant, "--rpm", "60",
                 "--usd-per-day", "2.5"]) == 0
    assert f"tenant {tenant}: rpm 60, usd_per_day 2.5" in capsys.readouterr().out
    assert main(["limits", "--redis-url", redis_url, "show", "--tenant", tenant, "--key-id", "k"]) == 0
    assert "key k: no limits" in capsys.readouterr().out
    assert main(["limits", "--redis-url", "redis://127.0.0.1:1", "show", "--tenant", tenant]) == 2
