"""vLLM adapter against fake InferenceService replicas (real grpc.aio servers on port 0)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from costmesh import errors
from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.convert import messages_from_pb
from costmesh.domain import Generation, Message, Role, Sampling, Usage
from costmesh.services.providers.prefix_routing.health import INFERENCE_SERVICE
from costmesh.services.providers.replica_picker import RoundRobinPicker
from costmesh.services.providers.vllm_adapter import VLLMAdapter

TINY = ModelSpec(id="tiny-llama", provider="vllm", input=0.10, output=0.40, cache_read=0.1)
M = 1e-6
PROMPT = (Message.of(Role.SYSTEM, "Be brief."), Message.of(Role.USER, "Name a prime."))


class FakeReplica(inference_pb2_grpc.InferenceServiceServicer):
    """Answers "<name>: <last user text>", with 40 prompt tokens of which 32 were prefix-cached."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[inference_pb2.GenerateRequest] = []
        self.fail: grpc.Status | None = None

    def _response(self, request, text: str) -> inference_pb2.GenerateResponse:
        return inference_pb2.GenerateResponse(
            text=text, prompt_tokens=40, cached_prompt_tokens=32, output_tokens=6,
            finish_reason="length" if request.sampling.max_tokens == 1 else "stop", model="tiny",
        )

    async def Generate(self, request, context):
        self.requests.append(request)
        if self.fail is not None:
            await context.abort_with_status(self.fail)
        user = messages_from_pb(request.chat.messages)[-1].text
        return self._response(request, f"{self.name}: {user}")

    async def StreamGenerate(self, request, context):
        self.requests.append(request)
        if self.fail is not None:
            await context.abort_with_status(self.fail)
        for word in (self.name, ": ", "two"):
            yield inference_pb2.StreamGenerateResponse(text_delta=word)
        yield inference_pb2.StreamGenerateResponse(final=self._response(request, ""))


@pytest.fixture(scope="module")
async def replicas():
    servers, fakes = [], []
    for name in ("r0", "r1"):
        fake = FakeReplica(name)
        server = grpc.aio.server()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(fake, server)
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set(INFERENCE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        fake.address = f"127.0.0.1:{port}"
        fakes.append(fake)
    yield fakes
    for server in servers:
        await server.stop(0)


@pytest.fixture
async def adapter(replicas):
    for fake in replicas:
        fake.requests.clear()
        fake.fail = None
    adapter = VLLMAdapter(RoundRobinPicker([f.address for f in replicas]), grpc.aio.insecure_channel,
                          health_interval_s=None)
    yield adapter
    await adapter.close()


EXPECTED_COST = 8 * 0.10 * M + 32 * 0.10 * 0.1 * M + 6 * 0.40 * M


async def test_generate_round_robins_and_prices_prefix_cache_hits(adapter, replicas):
    first = await adapter.generate(TINY, PROMPT, Sampling(max_tokens=16, temperature=0.0), "t1")
    second = await adapter.generate(TINY, PROMPT, Sampling(max_tokens=16), "t1")
    assert [first.text, second.text] == ["r0: Name a prime.", "r1: Name a prime."]
    assert [len(f.requests) for f in replicas] == [1, 1]
    assert first.usage == Usage(input_tokens=40, output_tokens=6, cache_read_tokens=32)
    assert (first.model, first.provider, first.finish_reason) == ("tiny-llama", "vllm", "stop")
    assert first.cost.total_usd == pytest.approx(EXPECTED_COST, rel=1e-12)
    sent = replicas[0].requests[0]
    assert sent.WhichOneof("input") == "chat"
    assert messages_from_pb(sent.chat.messages) == PROMPT
    assert sent.sampling.max_tokens == 16 and sent.sampling.temperature == 0.0
    assert sent.request_id and first.provider_request_id == sent.request_id


async def test_stream_yields_deltas_then_final_with_same_cost(adapter):
    events = [e async for e in adapter.stream(TINY, PROMPT, Sampling(max_tokens=1), "t1")]
    assert events[:-1] == ["r0", ": ", "two"]
    final = events[-1]
    assert isinstance(final, Generation) and final.text == ""
    assert final.finish_reason == "length"
    unary = await adapter.generate(TINY, PROMPT, Sampling(max_tokens=1), "t1")
    assert final.usage == unary.usage and final.cost == unary.cost


def rate_limited_status(seconds: int) -> grpc.Status:
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="queue full")
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    return rpc_status.to_status(status)


async def test_replica_errors_become_domain_errors(adapter, replicas):
    replicas[0].fail = rate_limited_status(4)
    with pytest.raises(errors.RateLimited) as caught:
        await adapter.generate(TINY, PROMPT, Sampling(), "t")
    assert caught.value.retry_after_s == 4.0
    assert replicas[0].address in str(caught.value) and "tiny-llama" in str(caught.value)
    replicas[1].fail = rpc_status.to_status(status_pb2.Status(code=code_pb2.UNAVAILABLE, message="loading"))
    replicas[0].fail = None
    # UNAVAILABLE takes r1 out and the request goes to r0; with r0 unavailable too, the last error is raised.
    assert (await adapter.generate(TINY, PROMPT, Sampling(), "t")).text == "r0: Name a prime."
    assert not adapter.picker.health.is_up(replicas[1].address)
    adapter.picker.health.set_up(replicas[1].address, True)
    replicas[0].fail = replicas[1].fail
    with pytest.raises(errors.Unavailable, match="loading"):
        await adapter.generate(TINY, PROMPT, Sampling(), "t")
    for fake in replicas:
        adapter.picker.health.set_up(fake.address, True)
    replicas[0].fail = rpc_status.to_status(status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="too long"))
    with pytest.raises(errors.InvalidRequest, match="too long"):
        [e async for e in adapter.stream(TINY, PROMPT, Sampling(), "t")]


async def test_unreachable_replica_is_unavailable():
    adapter = VLLMAdapter(RoundRobinPicker(["127.0.0.1:1"]), grpc.aio.insecure_channel)
    try:
        with pytest.raises(errors.Unavailable, match="127.0.0.1:1"):
            await adapter.generate(TINY, PROMPT, Sampling(), "t", timeout_s=5)
    finally:
        await adapter.close()


def test_round_robin_picker_cycles_and_needs_replicas():
    picker = RoundRobinPicker(["a:1", "b:2", "c:3"])
    assert [picker.pick(PROMPT) for _ in range(4)] == ["a:1", "b:2", "c:3", "a:1"]
    picker.health.set_up("b:2", False)
    assert [picker.pick(PROMPT) for _ in range(3)] == ["c:3", "a:1", "c:3"]
    assert picker.pick(PROMPT, frozenset({"a:1"})) == "c:3"
    picker.health.set_up("a:1", False)
    picker.health.set_up("c:3", False)
    with pytest.raises(errors.Unavailable, match="no healthy inference replica"):
        picker.pick(PROMPT)
    with pytest.raises(errors.ConfigError, match="COSTMESH_INFERENCE_ADDRS"):
        RoundRobinPicker([])


# --- the providers service, serving a self-hosted model -----------------------------------------

from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc  # noqa: E402
from costmesh.catalog.model import DEFAULT_CATALOG  # noqa: E402
from costmesh.config import Env  # noqa: E402
from costmesh.convert import messages_to_pb, same_fields_as  # noqa: E402
from costmesh.rpc.server import start_service  # noqa: E402
from costmesh.services.providers.service import SPEC  # noqa: E402

TINY_TOML = """
[models."tiny-llama"]
provider = "vllm"
input = 0.10
output = 0.40
cache_read = 0.1
context_window = 2048
"""


@pytest.fixture(scope="module")
async def vllm_only_service(replicas, tmp_path_factory):
    catalog = tmp_path_factory.mktemp("catalog") / "models.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text() + TINY_TOML)
    env = Env({"COSTMESH_MESH_AUTH": "off",
               "COSTMESH_INFERENCE_ADDRS": ",".join(f.address for f in replicas), "COSTMESH_CATALOG": str(catalog)})
    service = await start_service(SPEC, env, port=0)
    channel = grpc.aio.insecure_channel(service.address)
    yield provider_pb2_grpc.ProviderServiceStub(channel)
    await channel.close()
    await service.stop(0)


async def test_service_serves_self_hosted_model(vllm_only_service, replicas):
    for fake in replicas:
        fake.fail = None
    request = provider_pb2.GenerateRequest(model="tiny-llama", messages=messages_to_pb(PROMPT), tenant_id="t1")
    response = await vllm_only_service.Generate(request, timeout=10)
    assert response.text.endswith(": Name a prime.")
    assert (response.model, response.provider) == ("tiny-llama", "vllm")
    assert response.usage.cache_read_tokens == 32 and response.usage.input_tokens == 40
    assert response.cost.total_usd == pytest.approx(EXPECTED_COST, rel=1e-9)
    streamed = same_fields_as(request, provider_pb2.StreamGenerateRequest)
    events = [e async for e in vllm_only_service.StreamGenerate(streamed, timeout=10)]
    assert [e.WhichOneof("event") for e in events] == ["text_delta"] * 3 + ["final"]
    assert events[-1].final.cost.total_usd == pytest.approx(response.cost.total_usd, rel=1e-12)
    models = (await vllm_only_service.ListModels(provider_pb2.ListModelsRequest(), timeout=10)).models
    assert [(m.id, m.provider, m.input_usd_per_mtok, m.context_window) for m in models] == [
        ("tiny-llama", "vllm", 0.10, 2048)
    ]


async def test_service_names_the_missing_provider_setting(vllm_only_service):
    request = provider_pb2.GenerateRequest(model="gpt-5-mini", messages=messages_to_pb(PROMPT))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await vllm_only_service.Generate(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "'openai' is not configured" in caught.value.details()
    assert "OPENAI_API_KEY" in caught.value.details()
