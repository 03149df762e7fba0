"""The providers gRPC service on port 0 against the real simulator, official SDKs inside."""

from __future__ import annotations

import gzip
import json

import grpc
import httpx2
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh import errors
from costmesh.api.common.v1 import common_pb2
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.convert import cost_from_pb, messages_to_pb, same_fields_as, usage_from_pb
from costmesh.domain import Message, Part, Role
from costmesh.pricing import cost_of
from costmesh.rpc.server import start_service
from costmesh.rpc.status import from_rpc_error
from costmesh.services.providers.service import SPEC
from costmesh.services.simulator import start_simulator
from costmesh.services.simulator.config import default_data_dir

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

CATALOG = load_catalog()
ONE_PER_PROVIDER = ["claude-haiku-4-5", "gpt-5-mini"]
STRONG_PER_PROVIDER = ["claude-sonnet-4-5", "gpt-5.1"]  # replay the book's strong answers


class Mesh:
    def __init__(self, sim, service, channel, spans: InMemorySpanExporter):
        self.sim, self.service, self.channel, self.spans = sim, service, channel, spans
        self.stub = provider_pb2_grpc.ProviderServiceStub(channel)

    async def fault(self, **rule) -> None:
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{self.sim.url}/_sim/faults", json=rule)
            response.raise_for_status()


@pytest.fixture(scope="module")
async def mesh():
    sim = await start_simulator(port=0)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    service = await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off",
                                             "COSTMESH_SIMULATOR_URL": sim.url}), tracer_provider=tracer_provider,
                                  port=0)
    channel = grpc.aio.insecure_channel(service.address)
    yield Mesh(sim, service, channel, spans)
    await channel.close()
    await service.stop(0)
    await sim.stop()


def request(model: str, *messages: Message, max_tokens: int = 200) -> provider_pb2.GenerateRequest:
    return provider_pb2.GenerateRequest(
        model=model,
        messages=messages_to_pb(messages or (Message.of(Role.USER, "Why is the sky blue?"),)),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens),
        tenant_id="tenant-a",
    )


async def stream(mesh: Mesh, req: provider_pb2.GenerateRequest) -> tuple[str, provider_pb2.GenerateResponse]:
    streamed = same_fields_as(req, provider_pb2.StreamGenerateRequest)  # StreamGenerate's own message
    events = [e async for e in mesh.stub.StreamGenerate(streamed, timeout=20)]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "final" and set(kinds[:-1]) == {"text_delta"}
    assert events[-1].final.text == ""
    return "".join(e.text_delta for e in events[:-1]), events[-1].final


def assert_priced(response: provider_pb2.GenerateResponse) -> None:
    """The reported cost is the catalog price of the reported usage, and not zero."""
    expected = cost_of(CATALOG.model(response.model), usage_from_pb(response.usage))
    assert cost_from_pb(response.cost) == pytest.approx(expected)
    assert response.cost.total_usd == pytest.approx(expected.total_usd) and response.cost.total_usd > 0


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
async def test_generate(mesh, model):
    response = await mesh.stub.Generate(request(model), timeout=20)
    assert response.text
    assert (response.model, response.provider) == (model, CATALOG.model(model).provider)
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.finish_reason == "stop" and response.provider_request_id
    assert_priced(response)


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
async def test_stream_costs_what_generate_costs(mesh, model):
    unary = await mesh.stub.Generate(request(model), timeout=20)
    text, final = await stream(mesh, request(model))
    assert text == unary.text
    assert final.usage == unary.usage
    assert final.cost == unary.cost
    assert (final.model, final.provider, final.finish_reason) == (unary.model, unary.provider, "stop")
    assert_priced(final)


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
async def test_max_tokens_ends_in_length(mesh, model):
    response = await mesh.stub.Generate(request(model, max_tokens=3), timeout=20)
    assert response.finish_reason == "length" and response.usage.output_tokens == 3
    _, final = await stream(mesh, request(model, max_tokens=3))
    assert final.finish_reason == "length"


def book_entry() -> dict:
    with gzip.open(default_data_dir() / "gsm8k_routing_dev.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("strong_response") and len(row["strong_response"]) < 1500:
                return row
    raise AssertionError("no gsm8k row with a recorded strong response")


@pytest.mark.parametrize("model", STRONG_PER_PROVIDER)
async def test_book_prompt_gets_the_recorded_answer(mesh, model):
    row = book_entry()
    req = request(model, Message.of(Role.USER, row["prompt"]), max_tokens=4096)
    response = await mesh.stub.Generate(req, timeout=20)
    assert response.text == row["strong_response"]
    text, _ = await stream(mesh, req)
    assert text == row["strong_response"]


async def test_anthropic_cache_breakpoint_writes_then_reads(mesh):
    """A client-placed breakpoint becomes cache_control: the first call writes, the second reads, for less."""
    manual = " ".join(f"Rule {i}: answer in plain words and cite the section you used." for i in range(400))
    system = Message(Role.SYSTEM, (Part(text=manual, cache_breakpoint=True),))
    req = request("claude-sonnet-4-5", system, Message.of(Role.USER, "What is rule 7?"))
    first = await mesh.stub.Generate(req, timeout=20)
    assert first.usage.cache_write_tokens > 1024 and first.usage.cache_read_tokens == 0
    second = await mesh.stub.Generate(req, timeout=20)
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.input_tokens == first.usage.input_tokens  # every prompt token, cached or not
    assert second.cost.input_usd + second.cost.cache_read_usd < first.cost.input_usd + first.cost.cache_write_usd
    assert_priced(first)
    assert_priced(second)


async def test_openai_automatic_cache_reads(mesh):
    manual = " ".join(f"Policy {i}: keep answers short and exact." for i in range(300))
    req = request("gpt-5-mini", Message.of(Role.SYSTEM, manual), Message.of(Role.USER, "Summarise policy 3."))
    await mesh.stub.Generate(req, timeout=20)
    _, final = await stream(mesh, req)
    assert 0 < final.usage.cache_read_tokens <= final.usage.input_tokens
    assert final.cost.cache_read_usd == pytest.approx(final.usage.cache_read_tokens * 0.25e-6 * 0.1)
    assert_priced(final)


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
async def test_rate_limit_is_resource_exhausted_with_retry_info(mesh, model):
    await mesh.fault(model=model, status=429, count=1, retry_after=7)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.Generate(request(model), timeout=20)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = from_rpc_error(caught.value)
    assert isinstance(error, errors.RateLimited) and error.retry_after_s == 7.0
    await mesh.fault(model=model, status=429, count=1, retry_after=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream(mesh, request(model))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(caught.value).retry_after_s == 2.0
    assert (await mesh.stub.Generate(request(model), timeout=20)).text  # the rule is used up


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
@pytest.mark.parametrize("status", [503, 500, 529])
async def test_server_errors_are_unavailable(mesh, model, status):
    await mesh.fault(model=model, status=status, count=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.Generate(request(model), timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"HTTP {status}" in caught.value.details() and model in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream(mesh, request(model))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_unknown_model_is_invalid_argument(mesh):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.Generate(request("gpt-9-ultra"), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("model:") and "gpt-9-ultra" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream(mesh, request("gpt-9-ultra"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_no_messages_is_invalid_argument(mesh):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.Generate(provider_pb2.GenerateRequest(model="gpt-5-mini"), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("messages")


async def test_list_models_is_the_catalog(mesh):
    response = await mesh.stub.ListModels(provider_pb2.ListModelsRequest(), timeout=20)
    listed = {m.id: m for m in response.models}
    assert listed.keys() == CATALOG.models.keys()
    opus = listed["claude-opus-4-5"]
    assert (opus.provider, opus.tier, opus.input_usd_per_mtok, opus.output_usd_per_mtok, opus.context_window) == (
        "anthropic", common_pb2.TIER_COMPLEX, 5.0, 25.0, 200000)
    assert listed["gpt-5-nano"].tier == common_pb2.TIER_TRIVIAL


@pytest.mark.parametrize("method", ["Generate", "StreamGenerate"])
async def test_server_span_carries_model_tokens_and_cost(mesh, method):
    mesh.spans.clear()
    if method == "Generate":
        response = await mesh.stub.Generate(request("gpt-5-mini"), timeout=20)
    else:
        _, response = await stream(mesh, request("gpt-5-mini"))
    (span,) = [s for s in mesh.spans.get_finished_spans() if s.name.endswith(f"ProviderService/{method}")]
    attrs = span.attributes
    assert attrs["gen_ai.system"] == "openai" and attrs["gen_ai.request.model"] == "gpt-5-mini"
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == response.usage.output_tokens
    assert attrs["costmesh.usage.cache_read_tokens"] == response.usage.cache_read_tokens
    assert attrs["costmesh.cost_usd"] == pytest.approx(response.cost.total_usd)
    assert attrs["costmesh.cost.input_usd"] == pytest.approx(response.cost.input_usd)
    assert attrs["costmesh.cost.output_usd"] == pytest.approx(response.cost.output_usd)
    premium = CATALOG.premium  # the baseline beside the cost: same tokens, premium model, list price
    baseline = (response.usage.input_tokens * premium.input + response.usage.output_tokens * premium.output) * 1e-6
    assert attrs["costmesh.baseline_cost_usd"] == pytest.approx(baseline)
    assert attrs["costmesh.list_cost_usd"] >= attrs["costmesh.cost_usd"]


# -- batch RPCs: the providers' batch APIs (the simulator's), the provider keys staying here ---------


def batch_item(custom_id: str, model: str, question: str) -> provider_pb2.BatchRequestItem:
    return provider_pb2.BatchRequestItem(
        custom_id=custom_id, model=model, messages=messages_to_pb((Message.of(Role.USER, question),)),
        sampling=common_pb2.SamplingParams(max_tokens=200), tenant_id="tenant-a",
    )


async def batch_results(mesh: Mesh, provider: str, batch_id: str, models: dict[str, str]) -> dict:
    for _ in range(100):
        state = await mesh.stub.GetBatch(provider_pb2.GetBatchRequest(provider=provider, batch_id=batch_id),
                                         timeout=20)
        if state.ended:
            break
    assert state.ended and state.provider_status in ("ended", "completed", "cancelled")
    chunks = [c async for c in mesh.stub.StreamBatchResults(
        provider_pb2.StreamBatchResultsRequest(provider=provider, batch_id=batch_id, models=models), timeout=20)]
    return {r.custom_id: r for chunk in chunks for r in chunk.results}


@pytest.mark.parametrize("model", ONE_PER_PROVIDER)
async def test_batch_submit_poll_and_results_at_the_discount(mesh, model):
    listed = await mesh.stub.ListModels(provider_pb2.ListModelsRequest(), timeout=20)
    assert all(m.batch_api for m in listed.models)  # the simulator serves both batch APIs
    items = [batch_item("q-1", model, "Why is the sky blue?"), batch_item("q_2", model, "What is a B-tree?")]
    checked = await mesh.stub.SubmitBatch(provider_pb2.SubmitBatchRequest(requests=items, validate_only=True),
                                          timeout=20)
    provider = CATALOG.model(model).provider
    assert (checked.provider, checked.batch_id, checked.request_count) == (provider, "", 2)
    assert checked.payload_bytes > 0
    submitted = await mesh.stub.SubmitBatch(provider_pb2.SubmitBatchRequest(requests=items, label="test"), timeout=20)
    assert submitted.provider == provider and submitted.batch_id
    assert submitted.payload_bytes == checked.payload_bytes
    results = await batch_results(mesh, provider, submitted.batch_id, {"q-1": model, "q_2": model})
    assert set(results) == {"q-1", "q_2"}
    for result in results.values():
        assert result.status == provider_pb2.BATCH_RESULT_STATUS_SUCCEEDED and result.response.text
        response = result.response
        assert (response.model, response.provider) == (model, provider)
        spec = CATALOG.model(model)
        expected = cost_of(spec, usage_from_pb(response.usage), batch_discount=CATALOG.batch_discount)
        assert cost_from_pb(response.cost) == pytest.approx(expected)
        assert response.cost.total_usd > 0
        assert response.cost.discount_usd == pytest.approx(response.cost.total_usd)  # half off: half paid


async def test_batch_cancel_ends_with_cancelled_requests(mesh):
    items = [batch_item(f"c{i}", "gpt-5-nano", f"Cancelled question {i}?") for i in range(3)]
    submitted = await mesh.stub.SubmitBatch(provider_pb2.SubmitBatchRequest(requests=items), timeout=20)
    await mesh.stub.CancelBatch(provider_pb2.CancelBatchRequest(provider="openai", batch_id=submitted.batch_id),
                                timeout=20)
    results = await batch_results(mesh, "openai", submitted.batch_id, {f"c{i}": "gpt-5-nano" for i in range(3)})
    assert [results[f"c{i}"].status for i in range(3)] == [provider_pb2.BATCH_RESULT_STATUS_CANCELED] * 3
    assert not any(r.HasField("response") for r in results.values())


async def test_batch_requests_refused_with_the_field_named(mesh):
    async def refused(items, match: str, code=grpc.StatusCode.INVALID_ARGUMENT) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh.stub.SubmitBatch(provider_pb2.SubmitBatchRequest(requests=items, validate_only=True),
                                        timeout=20)
        assert caught.value.code() == code and match in caught.value.details(), caught.value.details()

    await refused([], "requests: at least one")
    await refused([batch_item("a", "gpt-5-mini", "x"), batch_item("b", "claude-haiku-4-5", "y")], "one provider")
    await refused([batch_item("a", "gpt-5-mini", "x"), batch_item("b", "gpt-5-nano", "y")], "one model")
    await refused([batch_item("a", "gpt-5-mini", "x"), batch_item("a", "gpt-5-mini", "y")],
                  "requests[1].custom_id")
    await refused([batch_item("not ok", "gpt-5-mini", "x")], "requests[0].custom_id")
    await refused([batch_item("a", "gpt-9-ultra", "x")], "requests[0].model")
    await refused([provider_pb2.BatchRequestItem(custom_id="a", model="gpt-5-mini")], "requests[0].messages")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.GetBatch(provider_pb2.GetBatchRequest(provider="anthropic", batch_id="msgbatch_nope"),
                                 timeout=20)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.GetBatch(provider_pb2.GetBatchRequest(provider="vllm", batch_id="x"), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no batch API" in caught.value.details()


async def test_batch_over_the_documented_limit_is_refused(mesh):
    """An OpenAI batch file holds at most 50,000 requests: one more is refused, nothing is sent."""
    item = batch_item("x", "gpt-5-nano", "hi")
    items = []
    for i in range(50_001):
        copy = provider_pb2.BatchRequestItem()
        copy.CopyFrom(item)
        copy.custom_id = f"r{i}"
        items.append(copy)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.stub.SubmitBatch(provider_pb2.SubmitBatchRequest(requests=items), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 50,000" in caught.value.details()
