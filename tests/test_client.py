"""The typed Python client (`costmesh.client`): sync and async against the in-process mesh,
and its retry rules against a scripted gateway that fails on purpose."""

import asyncio
import json
import time

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client import (
    AsyncClient,
    CacheStatus,
    ChatMessage,
    Client,
    Completion,
    CompletionRequest,
    CostBreakdown,
    InvalidRequest,
    RateLimited,
    RetryPolicy,
    TextDelta,
    Tier,
    ToolSpec,
    Unauthenticated,
    Unavailable,
    UpstreamTimeout,
)
from costmesh.errors import Unavailable as DomainUnavailable
from costmesh.rpc.interceptors import CallInterceptor
from costmesh.services.simulator import start_simulator
from costmesh.tooling.launcher import free_port

from inprocess_mesh import start_inprocess_mesh


@pytest.fixture(scope="module")
async def mesh(redis_url):
    sim = await start_simulator(port=0)
    mesh = await start_inprocess_mesh(redis_url, sim.url, TracerProvider(), {"COSTMESH_HTTP_PORT": "0"})
    yield mesh
    await mesh.stop()
    await sim.stop()


async def test_async_complete_returns_typed_costs_and_a_repeat_hits_the_cache(mesh):
    async with AsyncClient(mesh.gateway, api_key=mesh.api_key("client-a")) as client:
        first = await client.complete("What is the capital of Australia?", system="One sentence.", max_tokens=100)
        await mesh.stores_settled()
        again = await client.complete(CompletionRequest(prompt="What is the capital of Australia?",
                                                        system="One sentence.", max_tokens=100))
        stats = await client.stats()
    assert isinstance(first, Completion) and first.text and not first.cached
    assert first.cache_status is CacheStatus.MISS and isinstance(first.tier, Tier)
    assert isinstance(first.cost, CostBreakdown) and first.cost.total_usd > 0
    assert first.cost.total_usd == pytest.approx(first.cost.input_usd + first.cost.cache_read_usd
                                                 + first.cost.cache_write_usd + first.cost.output_usd
                                                 + first.cost.embedding_usd - first.cost.discount_usd)
    assert first.saving_usd == pytest.approx(first.baseline_cost_usd - first.cost.total_usd)
    assert first.savings.total_usd == pytest.approx(first.saving_usd)
    assert first.usage.input_tokens > 0 and first.request_id
    assert again.cached and again.cache_status is CacheStatus.EXACT_HIT and again.text == first.text
    assert again.tier is None
    assert stats.requests >= 2 and stats.exact_hits >= 1


async def test_async_stream_yields_deltas_then_the_completion(mesh):
    async with AsyncClient(mesh.gateway, api_key=mesh.api_key("client-stream")) as client:
        events = [e async for e in client.stream("Describe a binary heap in three sentences.", model="gpt-5-mini",
                                                 max_tokens=200)]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 2 and isinstance(events[-1], Completion)
    assert events[-1].text == "".join(d.text for d in deltas) and events[-1].model == "gpt-5-mini"
    assert events[-1].cost.total_usd > 0


async def test_the_sync_client_completes_streams_and_reads_stats(mesh):
    key = mesh.api_key("client-sync")

    def work():
        with Client(mesh.gateway, api_key=key) as client:
            reply = client.complete(CompletionRequest(
                messages=[ChatMessage("user", "Name a prime number."), ChatMessage("assistant", "7."),
                          ChatMessage("user", "Name another one.")], max_tokens=50, bypass=True))
            events = list(client.stream("Name a mammal that lays eggs.", model="gpt-5-nano", max_tokens=50))
            return reply, events, client.stats()

    reply, events, stats = await asyncio.to_thread(work)
    assert reply.text and reply.cache_status is CacheStatus.BYPASSED
    assert isinstance(events[-1], Completion) and events[-1].text
    assert stats.requests >= 2


async def test_errors_come_back_as_costmesh_errors(mesh):
    async with AsyncClient(mesh.gateway, api_key="cm_0000_forged") as client:
        with pytest.raises(Unauthenticated):
            await client.complete("hello")
    async with AsyncClient(mesh.gateway, api_key=mesh.api_key("client-err")) as client:
        with pytest.raises(InvalidRequest, match="^sampling.max_tokens"):
            await client.complete("hello", max_tokens=0)
        with pytest.raises(InvalidRequest, match="^messages"):
            await client.complete("")
        with pytest.raises(UpstreamTimeout):  # the deadline passes before the answer
            await client.complete("Write a long essay on the history of Rome.", timeout_s=0.005, bypass=True)

    def sync_bad():
        with Client(mesh.gateway, api_key="cm_0000_forged") as client:
            client.stats()

    with pytest.raises(Unauthenticated):
        await asyncio.to_thread(sync_bad)


# -- retry rules against a scripted gateway ---------------------------------------------------


class ScriptedGateway(gateway_pb2_grpc.GatewayServiceServicer):
    """Fails the first `failures` calls of each method with `error`, then answers."""

    def __init__(self, error: Exception, failures: int):
        self.error = error
        self.failures = failures
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.failures:
            raise self.error

    async def Complete(self, request, context):
        self._count("Complete")
        return gw.CompleteResponse(request_id=request.request_id, text="ok", model="gpt-5-nano")

    async def StreamComplete(self, request, context):
        self._count("StreamComplete")
        yield gw.StreamCompleteResponse(text_delta="o")
        yield gw.StreamCompleteResponse(final=gw.CompleteResponse(model="gpt-5-nano"))

    async def GetStats(self, request, context):
        self._count("GetStats")
        return gw.GetStatsResponse(requests=5)


async def serve(servicer, port: int = 0):
    server = grpc.aio.server(interceptors=[CallInterceptor()])  # the real error mapping, as the gateway's
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.02)
GATEWAY = "costmesh.gateway.v1.GatewayService"


def test_the_retry_policy_becomes_grpc_service_config():
    """Reads retry on UNAVAILABLE; completions only when opted in; max_attempts=1: no retryPolicy, no waiting."""
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.25, max_backoff_s=3, multiplier=1.5)
    assert policy.service_config() == {"methodConfig": [{
        "name": [{"service": GATEWAY, "method": "GetStats"}],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.25s", "maxBackoff": "3s", "backoffMultiplier": 1.5,
                        "retryableStatusCodes": ["UNAVAILABLE"]},
    }]}
    options = dict(policy.channel_options())
    assert options["grpc.enable_retries"] == 1 and json.loads(options["grpc.service_config"]) == policy.service_config()
    assert policy.wait_for_ready

    opted_in = RetryPolicy(max_attempts=9, retry_sent_completions=True).service_config()["methodConfig"]
    completions = next(c for c in opted_in if {"service": GATEWAY, "method": "Complete"} in c["name"])
    assert {"service": GATEWAY, "method": "StreamComplete"} in completions["name"]
    assert completions["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert completions["retryPolicy"]["maxAttempts"] == 5  # gRPC's cap
    assert completions["retryPolicy"]["initialBackoff"] == "0.1s"

    assert RetryPolicy(max_attempts=1).service_config() == {} and not RetryPolicy(max_attempts=1).wait_for_ready


class AbortingGateway(gateway_pb2_grpc.GatewayServiceServicer):
    """Answers UNAVAILABLE (context.abort, after reading the request) to the first `failures` calls of each method."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls: dict[str, int] = {}

    async def _count(self, name: str, context) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "went away mid-call")

    async def Complete(self, request, context):
        await self._count("Complete", context)
        return gw.CompleteResponse(request_id=request.request_id, text="ok", model="gpt-5-nano")

    async def StreamComplete(self, request, context):
        await self._count("StreamComplete", context)
        yield gw.StreamCompleteResponse(text_delta="o")
        yield gw.StreamCompleteResponse(final=gw.CompleteResponse(model="gpt-5-nano"))

    async def GetStats(self, request, context):
        await self._count("GetStats", context)
        return gw.GetStatsResponse(requests=5)


async def test_grpc_does_not_resend_a_completion_that_reached_the_server_unless_opted_in():
    fake = AbortingGateway(failures=1)
    server, port = await serve_plain(fake)
    try:
        async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=FAST) as client:
            with pytest.raises(Unavailable):
                await client.complete("hello")
            assert fake.calls["Complete"] == 1
            with pytest.raises(Unavailable):
                [e async for e in client.stream("hello")]
            assert fake.calls["StreamComplete"] == 1
            fake.failures = 3  # reads: retried by gRPC on UNAVAILABLE
            assert (await client.stats()).requests == 5 and fake.calls["GetStats"] == 4
        fake.calls.clear()
        fake.failures = 1
        opted_in = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, retry_sent_completions=True)
        async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=opted_in) as client:
            reply = await client.complete("hello", request_id="same-id")
            assert reply.text == "ok" and reply.request_id == "same-id" and fake.calls["Complete"] == 2
            events = [e async for e in client.stream("hello")]
            assert isinstance(events[-1], Completion) and fake.calls["StreamComplete"] == 2

        def sync_side():
            fake.calls.clear()
            with Client(f"127.0.0.1:{port}", api_key="k", retry=FAST) as client:
                with pytest.raises(Unavailable):
                    client.complete("hello")
                assert client.stats().requests == 5
            with Client(f"127.0.0.1:{port}", api_key="k", retry=opted_in) as client:
                assert client.complete("hello").text == "ok"
            return dict(fake.calls)

        assert await asyncio.to_thread(sync_side) == {"Complete": 2, "GetStats": 2}
    finally:
        await server.stop(0)


async def serve_plain(servicer, port: int = 0):
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def test_a_completion_that_reached_the_gateway_is_not_sent_twice():
    """The same through the gateway's own error mapping (a costmesh error raised, abort_with_status)."""
    fake = ScriptedGateway(DomainUnavailable("router went away mid-call"), failures=1)
    server, port = await serve(fake)
    try:
        async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=FAST) as client:
            with pytest.raises(Unavailable):
                await client.complete("hello")
            assert fake.calls["Complete"] == 1
            # Reads are idempotent: retried.
            fake.failures = 2
            assert (await client.stats()).requests == 5
            assert fake.calls["GetStats"] == 3

        def sync_side():
            with Client(f"127.0.0.1:{port}", api_key="k", retry=FAST) as client:
                fake.calls.clear()
                fake.failures = 1
                with pytest.raises(Unavailable):
                    client.complete("hello")
                assert fake.calls["Complete"] == 1
                with pytest.raises(Unavailable):
                    list(client.stream("hello"))
                assert fake.calls["StreamComplete"] == 1

        await asyncio.to_thread(sync_side)
    finally:
        await server.stop(0)


async def test_opting_in_resends_a_rate_limited_completion():
    fake = ScriptedGateway(RateLimited("upstream said 429", 0.05), failures=2)
    server, port = await serve(fake)
    try:
        async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=FAST) as client:
            with pytest.raises(RateLimited) as error:
                await client.complete("hello")
            assert error.value.retry_after_s == pytest.approx(0.05) and fake.calls["Complete"] == 1
        fake.calls.clear()
        opted_in = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, retry_sent_completions=True)
        async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=opted_in) as client:
            reply = await client.complete("hello", request_id="same-id")
        assert reply.text == "ok" and reply.request_id == "same-id" and fake.calls["Complete"] == 3
    finally:
        await server.stop(0)


async def test_a_call_made_before_the_gateway_is_up_waits_for_it_within_its_deadline():
    port = free_port()
    fake = AbortingGateway(failures=0)
    async with AsyncClient(f"127.0.0.1:{port}", api_key="k", retry=FAST, timeout_s=10) as client:
        call = asyncio.create_task(client.complete("hello"))
        read = asyncio.create_task(client.stats())
        await asyncio.sleep(0.5)  # nothing listening yet: the calls wait for the connection (wait_for_ready)
        assert not call.done() and not read.done()
        server, _ = await serve_plain(fake, port)
        try:
            reply = await asyncio.wait_for(call, 10)
            stats = await asyncio.wait_for(read, 10)
        finally:
            await server.stop(0)
    assert reply.text == "ok" and stats.requests == 5 and fake.calls == {"Complete": 1, "GetStats": 1}

    sync_port, sync_fake = free_port(), AbortingGateway(failures=0)

    def sync_call():
        with Client(f"127.0.0.1:{sync_port}", api_key="k", retry=FAST, timeout_s=10) as client:
            return client.complete("hello")

    call = asyncio.create_task(asyncio.to_thread(sync_call))
    await asyncio.sleep(0.5)
    assert not call.done()
    server, _ = await serve_plain(sync_fake, sync_port)
    try:
        assert (await asyncio.wait_for(call, 10)).text == "ok" and sync_fake.calls == {"Complete": 1}
    finally:
        await server.stop(0)


async def test_a_call_waiting_for_a_gateway_that_never_comes_ends_at_its_deadline():
    async with AsyncClient(f"127.0.0.1:{free_port()}", api_key="k", retry=FAST) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await client.complete("hello", timeout_s=0.5)
        assert 0.4 < time.monotonic() - started < 3


async def test_without_retries_a_closed_port_fails_at_once():
    async with AsyncClient(f"127.0.0.1:{free_port()}", api_key="k", retry=RetryPolicy(max_attempts=1)) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await client.complete("hello")
        assert time.monotonic() - started < 5


CALCULATOR = ToolSpec("calculator", "Evaluates an arithmetic expression",
                      {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]})


async def test_a_tool_loop_and_structured_output_through_the_typed_client(mesh):
    question = ChatMessage("user", "What is 12 * 7? Use the calculator.")
    async with AsyncClient(mesh.gateway, api_key=mesh.api_key("client-tools")) as client:
        first = await client.complete(CompletionRequest(messages=[question], tools=[CALCULATOR],
                                                        tool_choice="calculator", max_tokens=200))
        assert first.finish_reason == "tool_use" and len(first.tool_calls) == 1
        call = first.tool_calls[0]
        assert call.name == "calculator" and "expression" in json.loads(call.arguments)
        schema = {"type": "object", "properties": {"answer": {"type": "number"}}, "required": ["answer"],
                  "additionalProperties": False}
        final = await client.complete(CompletionRequest(
            messages=[question, ChatMessage("assistant", tool_calls=[call]),
                      ChatMessage("tool", "84", tool_call_id=call.id)],
            tools=[CALCULATOR], json_schema=schema, max_tokens=200))
        streamed = [event async for event in client.stream(CompletionRequest(
            messages=[question], tools=[CALCULATOR], tool_choice="required", max_tokens=200,
            bypass=True))]
        with pytest.raises(InvalidRequest, match="tool_call_id"):
            await client.complete(CompletionRequest(messages=[question, ChatMessage("tool", "84", tool_call_id="x")]))
    assert not final.tool_calls and isinstance(json.loads(final.text)["answer"], (int, float))
    assert isinstance(streamed[-1], Completion) and streamed[-1].tool_calls[0].name == "calculator"
