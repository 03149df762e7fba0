"""Anthropic and OpenAI adapters over the official SDKs, with a scripted HTTP transport.

Costs are checked against the providers' documented multipliers (Anthropic: cache write 1.25x
for 5 minutes, 2x for 1 hour, cache read 0.1x; OpenAI: cached input 0.1x), written out here
rather than read back from the catalog's multiplier fields.
"""

from __future__ import annotations

import base64
import json

import anthropic
import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh import errors
from costmesh.catalog import load_catalog
from costmesh.domain import Generation, Image, Message, Part, Role, Sampling, Usage
from costmesh.services.providers import anthropic_adapter, openai_adapter
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.providers.sdk_errors import retry_after_seconds

# anthropic 2.x warns on every call to a model it lists as deprecated (the catalog's 4.5 models).
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

CATALOG = load_catalog()
SONNET = CATALOG.model("claude-sonnet-4-5")  # $3 in, $15 out per Mtok
MINI = CATALOG.model("gpt-5-mini")  # $0.25 in, $2 out per Mtok
M = 1e-6

ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "cache_creation": {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50},
}
# uncached 100 at $3, reads 1000 at 0.1x, 5m writes 150 at 1.25x, 1h writes 50 at 2x, output 20 at $15
ANTHROPIC_COST = 100 * 3 * M + 1000 * 3 * 0.1 * M + 150 * 3 * 1.25 * M + 50 * 3 * 2 * M + 20 * 15 * M

OPENAI_USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 30,
    "total_tokens": 2030,
    "prompt_tokens_details": {"cached_tokens": 1536},
}
# uncached 464 at $0.25, cached 1536 at 0.1x, output 30 at $2
OPENAI_COST = 464 * 0.25 * M + 1536 * 0.25 * 0.1 * M + 30 * 2 * M

HELLO = (Message.of(Role.SYSTEM, "You are terse."), Message.of(Role.USER, "hello"))


class Upstream:
    """A scripted provider: records each request, answers with the queued responses in turn."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx2.Request] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(response, Exception):
            raise response
        return response

    def body(self, index: int = -1) -> dict:
        return json.loads(self.requests[index].content)

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


def claude(upstream: Upstream) -> AnthropicAdapter:
    return AnthropicAdapter(
        anthropic.AsyncAnthropic(api_key="k", base_url="http://up", max_retries=0, http_client=upstream.http())
    )


def gpt(upstream: Upstream) -> OpenAIAdapter:
    return OpenAIAdapter(
        openai.AsyncOpenAI(api_key="k", base_url="http://up/v1", max_retries=0, http_client=upstream.http())
    )


def anthropic_message(text="Hi there.", stop_reason="end_turn", usage=None) -> httpx2.Response:
    return httpx2.Response(200, json={
        "id": "msg_01", "type": "message", "role": "assistant", "model": SONNET.id,
        "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or ANTHROPIC_USAGE,
    })


def sse(events: list[tuple[str | None, dict | str]]) -> httpx2.Response:
    lines = []
    for name, data in events:
        if name:
            lines.append(f"event: {name}")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}")
        lines.append("")
    return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                           content=("\n".join(lines) + "\n").encode())


def anthropic_stream(deltas=("Hi", " there."), stop_reason="end_turn") -> httpx2.Response:
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    events = [("message_start", {"type": "message_start", "message": {
        "id": "msg_02", "type": "message", "role": "assistant", "model": SONNET.id, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": d}}) for d in deltas]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                  "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]}}),
               ("message_stop", {"type": "message_stop"})]
    return sse(events)


def openai_completion(text="Hi there.", finish_reason="stop", usage=None) -> httpx2.Response:
    return httpx2.Response(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": MINI.id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": usage or OPENAI_USAGE,
    })


def openai_stream(deltas=("Hi", " there."), finish_reason="stop") -> httpx2.Response:
    def chunk(choices, usage=None):
        return {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 0, "model": MINI.id,
                "choices": choices, "usage": usage}

    events = [(None, chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))]
    events += [(None, chunk([{"index": 0, "delta": {"content": d}, "finish_reason": None}])) for d in deltas]
    events += [(None, chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason}])),
               (None, chunk([], OPENAI_USAGE)), (None, "[DONE]")]
    return sse(events)


async def collect(stream) -> tuple[list[str], Generation]:
    events = [event async for event in stream]
    assert isinstance(events[-1], Generation)
    assert all(isinstance(e, str) for e in events[:-1])
    return events[:-1], events[-1]


# --- Anthropic -------------------------------------------------------------------------------


def test_anthropic_usage_counts_cached_tokens_as_input():
    usage = anthropic_adapter.usage_from(
        input_tokens=100, output_tokens=20, cache_read_input_tokens=1000,
        cache_creation_input_tokens=200, ephemeral_1h_input_tokens=50,
    )
    assert usage == Usage(input_tokens=1300, output_tokens=20, cache_read_tokens=1000,
                          cache_write_tokens=200, cache_write_1h_tokens=50)
    assert usage.uncached_input_tokens == 100


async def test_anthropic_generate_cost_from_documented_multipliers():
    upstream = Upstream(anthropic_message())
    generation = await claude(upstream).generate(SONNET, HELLO, Sampling(max_tokens=64), "t1")
    assert generation.text == "Hi there."
    assert (generation.model, generation.provider) == (SONNET.id, "anthropic")
    assert generation.usage == Usage(1300, 20, 1000, 200, 50)
    assert generation.cost.total_usd == pytest.approx(ANTHROPIC_COST, rel=1e-12)
    assert generation.cost.cache_write_usd == pytest.approx(150 * 3 * 1.25 * M + 50 * 3 * 2 * M)
    assert generation.finish_reason == "stop"
    assert generation.provider_request_id == "msg_01"


async def test_anthropic_request_shape():
    upstream = Upstream(anthropic_message())
    png = b"\x89PNG fake"
    messages = (
        Message(Role.SYSTEM, (Part(text="Long shared instructions.", cache_breakpoint=True),)),
        Message(Role.USER, (Part(text="Describe this."), Part(image=Image("image/png", png)))),
        Message.of(Role.ASSISTANT, "A logo."),
        Message(Role.USER, (Part(text="And this?", cache_breakpoint=True),)),
    )
    sampling = Sampling(max_tokens=99, temperature=0.3, stop=("END",))
    await claude(upstream).generate(SONNET, messages, sampling, "t1")
    body = upstream.body()
    assert upstream.requests[0].url.path == "/v1/messages"
    assert body["model"] == SONNET.id and body["max_tokens"] == 99
    assert body["system"] == [{"type": "text", "text": "Long shared instructions.",
                               "cache_control": {"type": "ephemeral"}}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Describe this."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(png).decode()}},
    ]
    assert body["messages"][2]["content"] == [{"type": "text", "text": "And this?",
                                               "cache_control": {"type": "ephemeral"}}]
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.3
    assert "top_p" not in body


def test_anthropic_keeps_the_last_four_client_breakpoints():
    messages = tuple(Message(Role.USER, (Part(text=f"p{i}", cache_breakpoint=True),)) for i in range(6))
    request = anthropic_adapter.build_request(SONNET, messages, Sampling(), anthropic_adapter.ClientBreakpoints())
    marked = [m["content"][0]["text"] for m in request["messages"] if "cache_control" in m["content"][0]]
    assert marked == ["p2", "p3", "p4", "p5"]


def test_anthropic_needs_a_turn_besides_system_and_text_only_system():
    policy = anthropic_adapter.ClientBreakpoints()
    with pytest.raises(errors.InvalidRequest, match="messages"):
        anthropic_adapter.build_request(SONNET, (Message.of(Role.SYSTEM, "s"),), Sampling(), policy)
    image_system = Message(Role.SYSTEM, (Part(image=Image("image/png", b"x")),))
    with pytest.raises(errors.InvalidRequest, match=r"messages\[0\]"):
        anthropic_adapter.build_request(SONNET, (image_system, *HELLO[1:]), Sampling(), policy)


@pytest.mark.parametrize("stop_reason, expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("refusal", "refusal"),
])
async def test_anthropic_stop_reasons(stop_reason, expected):
    upstream = Upstream(anthropic_message(stop_reason=stop_reason))
    generation = await claude(upstream).generate(SONNET, HELLO, Sampling(), "t1")
    assert generation.finish_reason == expected
    _, final = await collect(
        claude(Upstream(anthropic_stream(stop_reason=stop_reason))).stream(SONNET, HELLO, Sampling(), "t")
    )
    assert final.finish_reason == expected


async def test_anthropic_stream_costs_what_generate_costs():
    upstream = Upstream(anthropic_stream())
    deltas, final = await collect(claude(upstream).stream(SONNET, HELLO, Sampling(max_tokens=64), "t1"))
    assert upstream.body()["stream"] is True
    assert deltas == ["Hi", " there."]
    assert final.text == ""
    assert final.usage == Usage(1300, 20, 1000, 200, 50)
    assert final.cost.total_usd == pytest.approx(ANTHROPIC_COST, rel=1e-12)
    assert final.provider_request_id == "msg_02"
    unary = await claude(Upstream(anthropic_message())).generate(SONNET, HELLO, Sampling(max_tokens=64), "t1")
    assert final.cost == unary.cost


async def test_anthropic_stream_delta_usage_overrides_start():
    """message_delta's cumulative counts, when it carries input fields, win over message_start's."""
    response = anthropic_stream()
    text = response.content.decode().replace(
        '"usage": {"output_tokens": 20}',
        '"usage": {"output_tokens": 25, "input_tokens": 110, "cache_read_input_tokens": 1000, '
        '"cache_creation_input_tokens": 200}',
    )
    upstream = Upstream(httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode()))
    _, final = await collect(claude(upstream).stream(SONNET, HELLO, Sampling(), "t1"))
    assert final.usage == Usage(1310, 25, 1000, 200, 50)


# --- OpenAI ----------------------------------------------------------------------------------


def test_openai_usage_prompt_tokens_include_cached():
    usage = openai_adapter.usage_of(openai.types.CompletionUsage.model_validate(OPENAI_USAGE))
    assert usage == Usage(input_tokens=2000, output_tokens=30, cache_read_tokens=1536)
    assert usage.uncached_input_tokens == 464


async def test_openai_generate_cost_from_documented_multipliers():
    upstream = Upstream(openai_completion())
    generation = await gpt(upstream).generate(MINI, HELLO, Sampling(max_tokens=64, seed=7, stop=("X",)), "t1")
    assert generation.text == "Hi there."
    assert (generation.model, generation.provider) == (MINI.id, "openai")
    assert generation.usage == Usage(2000, 30, 1536)
    assert generation.cost.total_usd == pytest.approx(OPENAI_COST, rel=1e-12)
    assert generation.provider_request_id == "chatcmpl-1"
    body = upstream.body()
    assert upstream.requests[0].url.path == "/v1/chat/completions"
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello"}]
    assert body["seed"] == 7 and body["stop"] == ["X"]


async def test_openai_image_parts_become_data_urls():
    upstream = Upstream(openai_completion())
    messages = (Message(Role.USER, (Part(text="What is it?"), Part(image=Image("image/jpeg", b"jpg")))),)
    await gpt(upstream).generate(MINI, messages, Sampling(), "t1")
    assert upstream.body()["messages"][0]["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(b"jpg").decode()}},
    ]


@pytest.mark.parametrize("reason, expected", [("stop", "stop"), ("length", "length"), ("content_filter", "refusal")])
async def test_openai_finish_reasons(reason, expected):
    generation = await gpt(Upstream(openai_completion(finish_reason=reason))).generate(MINI, HELLO, Sampling(), "t")
    assert generation.finish_reason == expected
    _, final = await collect(gpt(Upstream(openai_stream(finish_reason=reason))).stream(MINI, HELLO, Sampling(), "t"))
    assert final.finish_reason == expected


async def test_openai_stream_asks_for_usage_and_costs_what_generate_costs():
    upstream = Upstream(openai_stream())
    deltas, final = await collect(gpt(upstream).stream(MINI, HELLO, Sampling(max_tokens=64), "t1"))
    body = upstream.body()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert deltas == ["Hi", " there."]
    assert final.text == "" and final.usage == Usage(2000, 30, 1536)
    assert final.cost.total_usd == pytest.approx(OPENAI_COST, rel=1e-12)
    unary = await gpt(Upstream(openai_completion())).generate(MINI, HELLO, Sampling(max_tokens=64), "t1")
    assert final.cost == unary.cost


# --- errors ----------------------------------------------------------------------------------

ADAPTERS = {"anthropic": (claude, SONNET), "openai": (gpt, MINI)}


def error_response(status: int, headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers or {},
                           json={"error": {"type": "x", "message": f"upstream says {status}"}})


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
@pytest.mark.parametrize("status, expected", [
    (500, errors.UpstreamError), (502, errors.UpstreamError), (503, errors.UpstreamError),
    (529, errors.UpstreamError), (400, errors.InvalidRequest), (422, errors.InvalidRequest),
    (401, errors.ConfigError), (403, errors.ConfigError), (404, errors.NotFound),
])
async def test_http_errors_map_to_domain_errors(provider, status, expected):
    make, model = ADAPTERS[provider]
    upstream = Upstream(error_response(status))
    with pytest.raises(expected) as caught:
        await make(upstream).generate(model, HELLO, Sampling(), "t")
    assert type(caught.value) is expected
    assert len(upstream.requests) == 1  # the SDK must not retry: the router does
    assert model.id in str(caught.value)
    if status in (401, 403):
        assert "provider rejected the API key" in str(caught.value)
    with pytest.raises(expected):
        await collect(make(Upstream(error_response(status))).stream(model, HELLO, Sampling(), "t"))


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_rate_limit_carries_retry_after(provider):
    make, model = ADAPTERS[provider]
    upstream = Upstream(error_response(429, {"retry-after": "7"}))
    with pytest.raises(errors.RateLimited) as caught:
        await make(upstream).generate(model, HELLO, Sampling(), "t")
    assert caught.value.retry_after_s == 7.0
    assert len(upstream.requests) == 1
    with pytest.raises(errors.RateLimited) as caught:
        await collect(make(Upstream(error_response(429, {"retry-after": "3"}))).stream(model, HELLO, Sampling(), "t"))
    assert caught.value.retry_after_s == 3.0


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
@pytest.mark.parametrize("failure, expected", [
    (httpx2.ReadTimeout("slow"), errors.UpstreamTimeout),
    (httpx2.ConnectError("refused"), errors.UpstreamError),
])
async def test_transport_failures(provider, failure, expected):
    make, model = ADAPTERS[provider]
    upstream = Upstream(failure)
    with pytest.raises(expected) as caught:
        await make(upstream).generate(model, HELLO, Sampling(), "t")
    assert type(caught.value) is expected
    assert len(upstream.requests) == 1


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "12"}) == 12.0
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=90.0) == pytest.approx(10.0)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


# --- spans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_generation_is_recorded_on_the_current_span(provider):
    make, model = ADAPTERS[provider]
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    response = anthropic_message() if provider == "anthropic" else openai_completion()
    with tracer_provider.get_tracer("test").start_as_current_span("call"):
        generation = await make(Upstream(response)).generate(model, HELLO, Sampling(), "t")
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert attrs["gen_ai.system"] == provider
    assert attrs["gen_ai.request.model"] == model.id
    assert attrs["gen_ai.usage.input_tokens"] == generation.usage.input_tokens
    assert attrs["gen_ai.usage.output_tokens"] == generation.usage.output_tokens
    assert attrs["costmesh.usage.cache_read_tokens"] == generation.usage.cache_read_tokens
    assert attrs["costmesh.cost_usd"] == pytest.approx(ANTHROPIC_COST if provider == "anthropic" else OPENAI_COST)
