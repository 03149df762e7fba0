"""Tenant limits enforced by the gateway (#19), through the in-process mesh on the embedded Redis:
over the request rate a request is refused (RESOURCE_EXHAUSTED with RetryInfo, HTTP 429 with
retry-after) before any provider call; a budget under 32 concurrent requests is never overrun
by more than one request's maximum cost, the rest refused with 429 before reaching the provider;
two gateway replicas share the limits; streams and batches are admitted too; GetStats answers
the caller's tenant's figures only, with its limits and what it used."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiohttp
import grpc
import pytest
import structlog
from multidict import CIMultiDict
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.errors import ConfigError, RateLimited, Unavailable
from costmesh.gateway.http.openai_format import parse_chat_request
from costmesh.gateway.limits import Limiter, Limits
from costmesh.gateway.request_limits import LimitSettings, RequestLimits, ceiling_of, prompt_tokens, request_limits
from costmesh.gateway.service import SPEC as GATEWAY
from costmesh.rpc.server import Runtime, start_service
from costmesh.rpc.status import from_rpc_error
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

CATALOG = load_catalog()
Headers = CIMultiDict[str]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0, ms_per_output_token=5)  # a stream lasts long enough to be cancelled
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    # A loaded CI machine can take over the default 500 ms for a Redis call, and the default mode
    # (auto) then lets requests through unmetered: these tests are about the metering, so the
    # limiter waits longer for Redis.
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(),
                                      {"COSTMESH_LIMITS_TIMEOUT_MS": "10000"})
    yield mesh
    await mesh.stop()


@pytest.fixture
async def limiter(redis_url):
    redis = Redis.from_url(redis_url)
    yield Limiter(redis)
    await redis.aclose()


def new_tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def key_id(api_key: str) -> str:
    return api_key.split("_")[1]  # cm_<key id>_<secret>


async def upstream_calls(simulator) -> int:
    """Provider calls the simulator has answered (or refused) since it started."""
    async with aiohttp.ClientSession() as session, session.get(f"{simulator.url}/_sim/stats") as reply:
        return (await reply.json())["requests"]


def chat_body(prompt: str, model: str = "gpt-5-mini", max_tokens: int = 16) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "costmesh": {"cache": {"bypass": True}}}


def ceiling_micro(body: dict) -> int:
    """What the gateway reserves for this HTTP body: its ceiling."""
    request = parse_chat_request(body, CATALOG).request
    return ceiling_of(CATALOG, request, prompt_tokens(request)).micro_usd


async def post_chat(session: aiohttp.ClientSession, mesh, api_key: str, body: dict) -> tuple[int, Headers, dict]:
    async with session.post(f"{mesh.http_url}/chat/completions", json=body,
                            headers={"Authorization": f"Bearer {api_key}"}) as reply:
        return reply.status, reply.headers.copy(), await reply.json()  # names case-insensitive


# -- requests per minute ----------------------------------------------------------------------------


async def test_over_the_request_rate_refused_before_any_provider_call(mesh, simulator, limiter):
    tenant = new_tenant("rpm")
    api_key = mesh.api_key(tenant)
    await limiter.set(tenant, Limits(rpm=2))
    async with GatewayClient(mesh.gateway, api_key=api_key) as client:
        for i in range(2):
            await client.complete(build_request(f"Rate limits, question {i}?", max_tokens=16, bypass_cache=True),
                                  timeout=TIMEOUT_S)
        before = await upstream_calls(simulator)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.complete(build_request("One request too many?", max_tokens=16, bypass_cache=True),
                                  timeout=TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over its limit of requests per minute" in info.value.details()
        error = from_rpc_error(info.value)  # RetryInfo: when one request will have refilled (60 s / 2)
        assert isinstance(error, RateLimited) and 25 <= error.retry_after_s <= 30.1, error.retry_after_s

        async with aiohttp.ClientSession() as session:  # the same bucket through the HTTP API
            status, headers, body = await post_chat(session, mesh, api_key, chat_body("And over HTTP?"))
        assert status == 429, body
        assert 25 <= int(headers["retry-after"]) <= 30 and body["error"]["type"] == "rate_limit_error"
        assert await upstream_calls(simulator) == before  # refused before the provider was called

        stats = await client.stats()
    assert stats.tenant_id == tenant and stats.requests == 2 and stats.limited == 2
    assert stats.limits_enforced
    (tenant_limits,) = [u for u in stats.limits if not u.key_id]
    assert tenant_limits.requests_per_minute == 2 and tenant_limits.requests_available < 1
    assert not tenant_limits.HasField("budget_per_day_usd")


# -- a budget under 32 concurrent requests (the acceptance test) ------------------------------


async def test_a_budget_under_32_concurrent_requests(mesh, simulator, limiter):
    """Waves of 32 concurrent HTTP requests until a whole wave is refused: what was spent stays
    within the budget plus one request's maximum cost, every refusal is a 429 with retry-after
    made before any provider call, and the spend Redis kept is exactly the callers' bills."""
    tenant = new_tenant("budget")
    api_key = mesh.api_key(tenant)
    bodies = [chat_body(f"Budget test {i}: name one prime number and say why it is prime.") for i in range(32)]
    one_max = max(ceiling_micro(body) for body in bodies)  # a request's maximum cost, micro-USD
    budget = 20 * one_max + one_max // 2
    await limiter.set(tenant, Limits(usd_per_day=budget / 1e6))
    spent = admitted = refused = 0
    waves: list[tuple[int, int]] = []
    before = await upstream_calls(simulator)
    async with aiohttp.ClientSession() as session:
        for wave in range(10):
            replies = await asyncio.gather(*(post_chat(session, mesh, api_key, body) for body in bodies))
            ok = [body for status, _, body in replies if status == 200]
            limited = [(headers, body) for status, headers, body in replies if status == 429]
            assert len(ok) + len(limited) == len(bodies), [status for status, _, _ in replies]
            for headers, body in limited:
                assert "USD per day" in body["error"]["message"] and int(headers["retry-after"]) >= 1
            spent += sum(round(body["costmesh"]["cost_usd"] * 1e6) for body in ok)
            admitted += len(ok)
            refused += len(limited)
            waves.append((len(ok), len(limited)))
            if not ok:
                break
    calls = await upstream_calls(simulator) - before
    kept = round((await limiter.usage(tenant))["usd_today"] * 1e6)
    print(f"\nbudget {budget} micro-USD, one request's maximum {one_max}, spent {spent} ({spent / budget:.1%}); "
          f"admitted {admitted}, refused {refused} in waves {waves}; provider calls {calls}")
    assert waves[-1][0] == 0 and waves[0][1] > 0  # the first wave already met the budget; the last was all refused
    assert spent <= budget + one_max  # the acceptance test
    assert spent <= budget  # each request reserved at least what it then cost
    assert spent >= budget - 2 * one_max  # and the budget was used, not merely refused
    assert calls == admitted  # a pinned model, one call per admitted request: none for a refused one
    assert abs(kept - spent) <= admitted  # settled to the bills (each rounded to a micro-dollar)


async def test_an_auto_request_never_costs_more_than_its_ceiling(mesh):
    """`auto` reserves every tier the cascade could reach, each at its dearest model, so an answer
    the gate turned down and the one served both fit in it."""
    api_key = mesh.api_key(new_tenant("ceiling"))
    prompts = ["Hi!", "What is 17 * 23?", "Prove that there are infinitely many primes, step by step.",
               "Write a haiku about the sea.", "Compare B-trees and LSM trees for a write-heavy database."]
    async with GatewayClient(mesh.gateway, api_key=api_key) as client:
        for prompt in prompts:
            request = build_request(prompt, max_tokens=256, bypass_cache=True)
            ceiling = ceiling_of(CATALOG, request, prompt_tokens(request))
            response = await client.complete(request, timeout=TIMEOUT_S)
            assert response.cost.total_usd * 1e6 <= ceiling.micro_usd, (prompt, response.attempts)
            assert response.usage.input_tokens + response.usage.output_tokens <= ceiling.tokens


# -- replicas -----------------------------------------------------------------------------------------


async def test_two_gateway_replicas_share_the_limits(mesh, redis_url, limiter):
    env = Env({
        "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "warning", "COSTMESH_HTTP_PORT": "0",
        "COSTMESH_API_KEYS_FILE": str(mesh.keys_file), "COSTMESH_MESH_SECRET_FILE": str(mesh.secret_file),
        "COSTMESH_CACHE_ADDR": mesh.service("cache").address,
        "COSTMESH_CLASSIFIER_ADDR": mesh.service("classifier").address,
        "COSTMESH_ROUTER_ADDR": mesh.service("router").address,
    })
    second = await start_service(GATEWAY, env, tracer_provider=TracerProvider(), port=0)
    tenant = new_tenant("replicas")
    api_key = mesh.api_key(tenant)
    await limiter.set(tenant, Limits(rpm=3))
    try:
        async with GatewayClient(mesh.gateway, api_key=api_key) as one, \
                GatewayClient(second.address, api_key=api_key) as two:
            outcomes = []
            for i, client in enumerate((one, two, one, two, one, two)):
                try:
                    await client.complete(build_request(f"Replica question {i}?", max_tokens=8, bypass_cache=True),
                                          timeout=TIMEOUT_S)
                    outcomes.append("ok")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    outcomes.append("limited")
            assert outcomes == ["ok", "ok", "ok", "limited", "limited", "limited"]
            assert (await one.stats()).requests == 2 and (await two.stats()).requests == 1  # each replica's own
    finally:
        await second.stop(0.5)


# -- streams ------------------------------------------------------------------------------------------


async def test_a_stream_is_admitted_before_its_first_event_and_settled_at_its_end(mesh, limiter):
    tenant = new_tenant("stream")
    api_key = mesh.api_key(tenant)
    await limiter.set(tenant, Limits(rpm=2, usd_per_day=1.0))
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        metadata = (("authorization", f"Bearer {api_key}"),)

        def stream(prompt: str, max_tokens: int = 64):
            request = build_request(prompt, max_tokens=max_tokens, bypass_cache=True, model="gpt-5-mini")
            return request, stub.StreamComplete(gw.StreamCompleteRequest(request=request), metadata=metadata,
                                                timeout=TIMEOUT_S)

        _, call = stream("Stream me an answer about rivers.")
        events = [event async for event in call]
        bill = events[-1].final.cost.total_micro_usd
        assert (await limiter.usage(tenant))["usd_today"] * 1e6 == pytest.approx(bill, abs=1)  # settled

        request, call = stream("Cancel me after the first words, please: tell me a long story.", max_tokens=2000)
        async for event in call:
            assert event.WhichOneof("event") == "text_delta"
            call.cancel()  # the client goes away mid-answer
            break
        ceiling = ceiling_of(CATALOG, request, prompt_tokens(request)).micro_usd
        for _ in range(100):  # settled in the background: the whole reservation kept
            spent = (await limiter.usage(tenant))["usd_today"] * 1e6
            if spent == pytest.approx(bill + ceiling, abs=1):
                break
            await asyncio.sleep(0.05)
        assert spent == pytest.approx(bill + ceiling, abs=1)

        _, call = stream("A third stream in the same minute?")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await anext(aiter(call))  # refused before the first event
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- batches ------------------------------------------------------------------------------------------


async def test_a_batch_takes_one_request_per_item(mesh, limiter):
    tenant = new_tenant("batch")
    api_key = mesh.api_key(tenant)
    await limiter.set(tenant, Limits(rpm=5))
    metadata = (("authorization", f"Bearer {api_key}"),)

    def batch(n: int) -> gw.SubmitBatchRequest:
        return gw.SubmitBatchRequest(requests=[build_request(f"Batch item {i}?", max_tokens=16, model="gpt-5-nano")
                                               for i in range(n)])

    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.BatchServiceStub(channel)
        await stub.SubmitBatch(batch(3), metadata=metadata, timeout=TIMEOUT_S)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitBatch(batch(3), metadata=metadata, timeout=TIMEOUT_S)  # 2 of 5 left
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await stub.SubmitBatch(batch(2), metadata=metadata, timeout=TIMEOUT_S)


# -- GetStats: the caller's tenant only -------------------------------------------------------------


async def test_get_stats_reports_the_callers_tenant_only(mesh, limiter):
    alpha, beta = new_tenant("alpha"), new_tenant("beta")
    alpha_key, beta_key = mesh.api_key(alpha), mesh.api_key(beta)
    await limiter.set(alpha, Limits(usd_per_day=2.5, tpm=100_000))
    await limiter.set(alpha, Limits(rpm=100), key_id=key_id(alpha_key))
    costs = {alpha: 0, beta: 0}
    for tenant, key, count in ((alpha, alpha_key, 2), (beta, beta_key, 3)):
        async with GatewayClient(mesh.gateway, api_key=key) as client:
            for i in range(count):
                response = await client.complete(build_request(f"{tenant} asks question {i}?", max_tokens=16,
                                                               bypass_cache=True), timeout=TIMEOUT_S)
                costs[tenant] += response.cost.total_micro_usd
    async with GatewayClient(mesh.gateway, api_key=alpha_key) as client:
        stats = await client.stats()
        with pytest.raises(grpc.aio.AioRpcError) as info:  # a key never reads another tenant's figures
            await client.stub.GetStats(gw.GetStatsRequest(tenant_id=beta), timeout=TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (stats.tenant_id, stats.requests, stats.cost_micro_usd) == (alpha, 2, costs[alpha])
    tenant_limits, key_limits = stats.limits
    assert tenant_limits.key_id == "" and tenant_limits.budget_per_day_usd == 2.5
    assert tenant_limits.budget_per_day_micro_usd == 2_500_000 and tenant_limits.tokens_per_minute == 100_000
    assert tenant_limits.spent_today_micro_usd == pytest.approx(costs[alpha], abs=2)
    assert 0 < tenant_limits.tokens_available <= 100_000  # refilled at 1,667 tokens a second
    assert not tenant_limits.HasField("requests_per_minute")
    assert key_limits.key_id == key_id(alpha_key) and key_limits.requests_per_minute == 100
    assert 97 <= key_limits.requests_available <= 100  # the key's own bucket (the tenant has none)

    from costmesh.client import AsyncClient  # the typed client sees the same

    async with AsyncClient(mesh.gateway, api_key=beta_key) as client:
        typed = await client.stats()
    assert (typed.tenant_id, typed.requests, typed.limited, typed.limits_enforced) == (beta, 3, 0, True)
    assert [(u.key_id, u.usd_per_day, u.requests_per_minute) for u in typed.limits] == [("", None, None),
                                                                                       (key_id(beta_key), None, None)]


# -- settings and Redis down ------------------------------------------------------------------------


def runtime(env: dict[str, str]) -> Runtime:
    return Runtime("gateway", Env(env), TracerProvider(), structlog.get_logger())


async def test_settings_without_redis():
    async with contextlib.AsyncExitStack() as cleanup:
        assert await request_limits(runtime({}), cleanup) is None  # one log line, no limits
        assert await request_limits(runtime({"REDIS_URL": "redis://127.0.0.1:1", "COSTMESH_LIMITS": "off"}),
                                    cleanup) is None
        with pytest.raises(ConfigError, match="COSTMESH_LIMITS=required needs REDIS_URL"):
            await request_limits(runtime({"COSTMESH_LIMITS": "required"}), cleanup)
        with pytest.raises(ConfigError, match="COSTMESH_LIMITS"):
            await request_limits(runtime({"COSTMESH_LIMITS": "maybe"}), cleanup)


class CountingLimiter(Limiter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = 0

    async def admit(self, *args, **kwargs):
        self.asked += 1
        return await super().admit(*args, **kwargs)


async def test_redis_down_fails_open_then_skips_redis_for_a_while_or_refuses_when_required():
    now = [100.0]
    request = build_request("Is Redis there?", tenant="t", max_tokens=16)
    down = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    limiter = CountingLimiter(down)
    limits = RequestLimits(limiter, CATALOG, LimitSettings(cooldown_ms=1000), clock=lambda: now[0])
    admission = await limits.admit(request, "k")  # admitted: the mesh serves while Redis is down
    assert admission.ceiling.micro_usd > 0 and limiter.asked == 1
    await limits.admit(request, "k")
    assert limiter.asked == 1  # within the cool-down Redis is not asked
    now[0] += 1.5
    await limits.admit(request, "k")
    assert limiter.asked == 2
    await down.aclose()

    down = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    required = RequestLimits(Limiter(down, fail_open=False), CATALOG, LimitSettings(mode="required"))
    with pytest.raises(Unavailable):
        await required.admit(request, "k")
    await down.aclose()
