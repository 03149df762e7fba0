"""Integration: a real router service on port 0 in front of a tiny fake ProviderService."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from costmesh.api.common.v1 import common_pb2
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.convert import cost_to_pb, same_fields_as, usage_to_pb
from costmesh.domain import Usage
from costmesh.errors import ConfigError
from costmesh.pricing import cost_of
from costmesh.rpc.server import start_service
from costmesh.services.router.service import SPEC

CATALOG = load_catalog()
ANSWER = "Paris is the capital of France, on the Seine."
USAGE = Usage(input_tokens=50, output_tokens=12)


class FakeProviders(provider_pb2_grpc.ProviderServiceServicer):
    """Answers every model; `script[model]` holds failures or odd answers to hand out first."""

    def __init__(self):
        self.script: dict[str, list] = {}
        self.calls: list[str] = []
        self.deadlines: list[float | None] = []

    def _response(self, model: str, text: str, finish_reason: str = "stop") -> provider_pb2.GenerateResponse:
        spec = CATALOG.model(model)
        return provider_pb2.GenerateResponse(
            text=text,
            model=model,
            provider=spec.provider,
            usage=usage_to_pb(USAGE),
            cost=cost_to_pb(cost_of(spec, USAGE)),
            finish_reason=finish_reason,
        )

    async def _step(self, request, context) -> str:
        self.calls.append(request.model)
        self.deadlines.append(context.time_remaining())
        steps = self.script.get(request.model) or []
        step = steps.pop(0) if steps else ANSWER
        if isinstance(step, tuple) and step[0] == 429:
            status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
            delay = duration_pb2.Duration(nanos=int(step[1] * 1e9))
            status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            await context.abort_with_status(rpc_status.to_status(status))
        if step == 503:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")
        return step

    async def Generate(self, request, context):
        return self._response(request.model, await self._step(request, context))

    async def StreamGenerate(self, request, context):
        text = await self._step(request, context)
        for i, word in enumerate(text.split(" ")):
            yield provider_pb2.StreamGenerateResponse(text_delta=word if i == 0 else " " + word)
        yield provider_pb2.StreamGenerateResponse(final=self._response(request.model, ""))


@pytest.fixture(scope="module")
async def mesh():
    fake = FakeProviders()
    server = grpc.aio.server()
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = Env({"COSTMESH_MESH_AUTH": "off",
               "COSTMESH_PROVIDERS_ADDR": f"127.0.0.1:{port}", "COSTMESH_ROUTER_BACKOFF_BASE_S": "0.01"})
    router = await start_service(SPEC, env, port=0)
    channel = grpc.aio.insecure_channel(router.address)
    yield fake, router_pb2_grpc.RouterServiceStub(channel)
    await channel.close()
    await router.stop(0)
    await server.stop(0)


@pytest.fixture
def fake(mesh):
    providers, _ = mesh
    providers.script.clear()
    providers.calls.clear()
    providers.deadlines.clear()
    return providers


@pytest.fixture
def stub(mesh):
    return mesh[1]


def request(**kw) -> router_pb2.ExecuteRequest:
    question = common_pb2.Message(
        role=common_pb2.ROLE_USER, content=[common_pb2.ContentPart(text="What is the capital of France?")]
    )
    return router_pb2.ExecuteRequest(messages=[question], tenant_id="t1", **kw)


async def stream(stub, req) -> tuple[list[str], router_pb2.ExecuteResponse]:
    deltas, finals = [], []
    async for event in stub.StreamExecute(same_fields_as(req, router_pb2.StreamExecuteRequest), timeout=10):
        if event.WhichOneof("event") == "text_delta":
            deltas.append(event.text_delta)
        else:
            finals.append(event.final)
    assert len(finals) == 1
    return deltas, finals[0]


async def test_execute_round_trip(fake, stub):
    response = await stub.Execute(request(), timeout=10)
    assert fake.calls == ["gpt-5-mini"]
    assert fake.deadlines[0] is not None and fake.deadlines[0] < 11  # the caller's 10 s, not the tier's 30 s
    assert (response.text, response.model, response.provider) == (ANSWER, "gpt-5-mini", "openai")
    assert response.tier == common_pb2.TIER_SIMPLE and response.quality_passed
    assert response.usage.input_tokens == USAGE.input_tokens
    assert response.cost.total_usd == pytest.approx(cost_of(CATALOG.model("gpt-5-mini"), USAGE).total_usd)
    assert response.baseline_cost_usd > response.cost.total_usd > 0
    assert [a.outcome for a in response.attempts] == [router_pb2.ATTEMPT_OUTCOME_OK]
    assert response.baseline_cost_micro_usd == round(response.baseline_cost_usd * 1e6) > 0
    assert response.list_cost_micro_usd == round(response.list_cost_usd * 1e6) > 0
    assert response.cost.total_micro_usd == response.attempts[0].cost.total_micro_usd > 0


async def test_rate_limit_with_retry_info_is_retried(fake, stub):
    fake.script["gpt-5-mini"] = [(429, 0.2)]
    started = time.monotonic()
    response = await stub.Execute(request(), timeout=10)
    assert time.monotonic() - started >= 0.2
    assert fake.calls == ["gpt-5-mini", "gpt-5-mini"]
    assert response.model == "gpt-5-mini"
    outcomes = [a.outcome for a in response.attempts]
    assert outcomes == [router_pb2.ATTEMPT_OUTCOME_ERROR, router_pb2.ATTEMPT_OUTCOME_OK]
    assert "RateLimited" in response.attempts[0].detail


async def test_gate_failure_upgrades_and_bills_both(fake, stub):
    fake.script["gpt-5-nano"] = ["I cannot assist with that."]
    response = await stub.Execute(request(tier=common_pb2.TIER_TRIVIAL), timeout=10)
    assert fake.calls == ["gpt-5-nano", "gpt-5-mini"]
    assert response.tier == common_pb2.TIER_SIMPLE
    expected = sum(cost_of(CATALOG.model(m), USAGE).total_usd for m in ("gpt-5-nano", "gpt-5-mini"))
    assert response.cost.total_usd == pytest.approx(expected)
    assert response.usage.output_tokens == 2 * USAGE.output_tokens


async def test_stream_execute_buffers_then_flushes(fake, stub):
    fake.script["gpt-5-nano"] = ["I cannot assist with that."]
    deltas, final = await stream(stub, request(tier=common_pb2.TIER_TRIVIAL))
    assert deltas == [ANSWER]
    assert final.text == "" and final.model == "gpt-5-mini"
    assert len(final.attempts) == 2


async def test_stream_execute_streams_the_last_tier_and_retries_429(fake, stub):
    fake.script["claude-opus-4-5"] = [(429, 0.05)]
    deltas, final = await stream(stub, request(tier=common_pb2.TIER_COMPLEX))
    assert len(deltas) == len(ANSWER.split(" ")) and "".join(deltas) == ANSWER
    assert fake.calls == ["claude-opus-4-5", "claude-opus-4-5"]
    assert final.model == "claude-opus-4-5" and final.quality_passed
    executed = await stub.Execute(request(tier=common_pb2.TIER_COMPLEX), timeout=10)
    assert final.cost.total_usd == pytest.approx(executed.cost.total_usd)


async def test_upstream_failure_falls_back_to_the_other_provider(fake, stub):
    fake.script["gpt-5-mini"] = [503, 503]
    response = await stub.Execute(request(), timeout=10)
    assert fake.calls == ["gpt-5-mini", "gpt-5-mini", "claude-haiku-4-5"]
    assert (response.model, response.provider) == ("claude-haiku-4-5", "anthropic")


async def test_everything_down_is_unavailable(fake, stub):
    fake.script.update({m: [503] * 2 for m in CATALOG.models})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Execute(request(tier=common_pb2.TIER_COMPLEX), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "claude-opus-4-5" in err.value.details()


async def test_invalid_requests(fake, stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Execute(router_pb2.ExecuteRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Execute(request(model="gpt-0"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "model" in err.value.details()
    assert fake.calls == []


async def test_providers_address_is_required():
    with pytest.raises(ConfigError, match="COSTMESH_PROVIDERS_ADDR"):
        await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off"}), port=0)


async def plan(stub, **kw) -> router_pb2.PlanResponse:
    return await stub.Plan(router_pb2.PlanRequest(**kw), timeout=10)


async def test_plan_is_the_first_model_execute_calls(fake, stub):
    for tier in (common_pb2.TIER_UNSPECIFIED, common_pb2.TIER_TRIVIAL, common_pb2.TIER_MODERATE,
                 common_pb2.TIER_COMPLEX):
        planned = await plan(stub, tier=tier)
        assert fake.calls == []  # planning calls no provider
        response = await stub.Execute(request(tier=tier), timeout=10)
        assert fake.calls[0] == planned.model == response.model
        assert planned.tier == response.tier and planned.provider == response.provider
        fake.calls.clear()
    default = await plan(stub)
    assert (default.model, default.tier) == ("gpt-5-mini", common_pb2.TIER_SIMPLE)  # the router's default tier


async def test_plan_among_providers_within_the_policy(fake, stub):
    anthropic = await plan(stub, tier=common_pb2.TIER_SIMPLE, providers=["anthropic"])
    assert (anthropic.model, anthropic.provider, anthropic.tier) == (
        "claude-haiku-4-5", "anthropic", common_pb2.TIER_SIMPLE)
    capped = await plan(stub, tier=common_pb2.TIER_COMPLEX, max_tier=common_pb2.TIER_SIMPLE)
    assert (capped.model, capped.tier) == ("gpt-5-mini", common_pb2.TIER_SIMPLE)
    pinned = await plan(stub, tier=common_pb2.TIER_TRIVIAL, model="claude-opus-4-5")
    assert (pinned.model, pinned.tier) == ("claude-opus-4-5", common_pb2.TIER_COMPLEX)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await plan(stub, model="claude-opus-4-5", providers=["openai"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "anthropic" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await plan(stub, providers=["vllm"])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "vllm" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await plan(stub, tier=9)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("tier")
    assert fake.calls == []
