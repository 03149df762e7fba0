"""Upstream 429s (#19): the cascade's retries are bounded per request, and a request the
upstreams keep refusing answers RESOURCE_EXHAUSTED with RetryInfo over gRPC and HTTP 429 with
`retry-after` at the gateway's HTTP API, as the README promises (it was UNAVAILABLE / 503
after 9 attempts and 12 s)."""

from __future__ import annotations

import time

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from test_router_cascade import CATALOG, FakeClock, FakeProvider, make, request

from costmesh.catalog import Tier
from costmesh.errors import RateLimited, UpstreamError
from costmesh.rpc.status import from_rpc_error
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

# -- the cascade alone ------------------------------------------------------------------------------


async def test_every_model_429_answers_rate_limited_after_a_bounded_number_of_attempts():
    clock = FakeClock()
    provider = FakeProvider(always={m: RateLimited("429", retry_after_s=1.5) for m in CATALOG.models})
    with pytest.raises(RateLimited) as error:
        await make(provider, clock=clock).execute(request(tier=Tier.SIMPLE))
    assert len(provider.calls) == 4  # RetryPolicy.max_rate_limited
    assert sum(clock.sleeps) <= 4.0  # RetryPolicy.rate_limit_wait_s
    assert error.value.retry_after_s == 1.5
    assert "rate limited upstream after 4 attempts" in str(error.value)


async def test_the_shortest_retry_after_is_passed_on_and_never_less_than_a_second():
    provider = FakeProvider(always={"gpt-5-mini": RateLimited("429", retry_after_s=3.0),
                                    "claude-haiku-4-5": RateLimited("429", retry_after_s=0.0)})
    with pytest.raises(RateLimited) as error:
        await make(provider, max_rate_limited=20).execute(request(tier=Tier.SIMPLE, max_tier=Tier.SIMPLE))
    assert error.value.retry_after_s == 1.0
    provider = FakeProvider(always={m: RateLimited("429") for m in CATALOG.models})  # no hint at all
    with pytest.raises(RateLimited) as error:
        await make(provider).execute(request(model="gpt-5-mini"))
    assert error.value.retry_after_s == 1.0 and provider.calls == ["gpt-5-mini"] * 3


async def test_waits_after_429s_stop_at_the_requests_budget():
    clock = FakeClock()
    provider = FakeProvider({"gpt-5-mini": [RateLimited("429", retry_after_s=3.0)] * 3})
    result = await make(provider, clock=clock).execute(request())
    assert clock.sleeps == [3.0]  # a second 3 s wait would pass rate_limit_wait_s (4 s): next model
    assert provider.calls == ["gpt-5-mini", "gpt-5-mini", "claude-haiku-4-5"]
    assert result.model == "claude-haiku-4-5"


async def test_mixed_failures_stay_an_upstream_error():
    provider = FakeProvider({"gpt-5-mini": [UpstreamError("503"), RateLimited("429", retry_after_s=0.1),
                                            UpstreamError("503")]})
    with pytest.raises(UpstreamError):
        await make(provider).execute(request(model="gpt-5-mini"))


# -- through the mesh: gRPC and HTTP ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider())
    yield mesh
    await mesh.stop()


async def arm(simulator, *rules: dict) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{simulator.url}/_sim/reset") as reply:
            assert reply.status == 200
        for rule in rules:
            async with session.post(f"{simulator.url}/_sim/faults", json=rule) as reply:
                assert reply.status == 200, await reply.text()


async def attempts_made(simulator, armed: int) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{simulator.url}/_sim/faults") as reply:
            rules = (await reply.json())["rules"]
        async with session.post(f"{simulator.url}/_sim/reset") as reply:
            assert reply.status == 200
    return sum(armed - rule["count"] for rule in rules)


async def test_grpc_resource_exhausted_with_retry_info_when_every_provider_says_429(mesh, simulator):
    armed = 100
    await arm(simulator, *({"provider": p, "status": 429, "count": armed, "retry_after": 1.5}
                           for p in ("openai", "anthropic")))
    started = time.monotonic()
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("rl-grpc")) as client:
        request_ = build_request("Explain rate limits in one line.", max_tokens=32, bypass_cache=True)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.complete(request_, timeout=60)
    elapsed = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = from_rpc_error(info.value)  # RetryInfo in the status details
    assert isinstance(error, RateLimited) and error.retry_after_s == pytest.approx(1.5)
    assert await attempts_made(simulator, armed) == 4
    assert elapsed < 10, elapsed  # two 1.5 s waits, then a second model once


async def test_http_429_with_retry_after(mesh, simulator):
    armed = 100
    await arm(simulator, {"model": "gpt-5-nano", "status": 429, "count": armed, "retry_after": 2})
    headers = {"Authorization": f"Bearer {mesh.api_key('rl-http')}"}
    body = {"model": "gpt-5-nano", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hi."}],
            "costmesh": {"cache": {"bypass": True}}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{mesh.http_url}/chat/completions", json=body, headers=headers) as reply:
            assert reply.status == 429, await reply.text()
            assert reply.headers["retry-after"] == "2"
            error = (await reply.json())["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert await attempts_made(simulator, armed) == 3  # a pinned model: its retries, no fallback
