"""`POST /v1/messages`, the Anthropic Messages API, with the official `anthropic` SDK
(unmodified, only its base_url and api_key set) against the in-process mesh, real Redis and the
simulator: a plain message with costmesh's extras, a tool loop (tool_use -> tool_result ->
final text), streaming assembled by the SDK's `messages.stream(...)`, structured output,
images, system blocks with cache_control, and errors in Anthropic's shape naming the
Anthropic parameter."""

import base64
import json

import aiohttp
import anthropic
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.catalog import load_catalog
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

WEATHER = {"name": "get_weather", "description": "Get the current weather forecast for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                            "required": ["city"]}}
STOCK = {"name": "get_stock_price", "description": "Look up the latest stock price of a company ticker.",
         "input_schema": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]},
         "cache_control": {"type": "ephemeral"}}
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000001"
    "e221bc330000000049454e44ae426082")).decode()


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


def base_url(mesh) -> str:
    return mesh.http_url.removesuffix("/v1")  # the anthropic SDK appends /v1/messages itself


def sdk(mesh, tenant: str = "messages") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url(mesh), api_key=mesh.api_key(tenant), max_retries=0)


def run_tool(name: str, tool_input: dict) -> str:
    if name == "get_weather":
        return f"{tool_input['city']}: 18 degrees and sunny"
    return f"{tool_input.get('ticker', '?')}: 123.45 USD"


async def test_a_message_with_costmesh_extras(mesh):
    client = sdk(mesh)
    raw = await client.messages.with_raw_response.create(
        model="auto", max_tokens=200, system="Answer briefly.",
        messages=[{"role": "user", "content": "What does the HTTP status code 418 mean?"}])
    message = await raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens") and message.model in load_catalog().models
    assert message.usage.output_tokens > 0 and message.usage.input_tokens >= 0
    extras = message.model_extra["costmesh"]
    assert extras["cost_usd"] > 0 and extras["cache"]["status"] == "miss"
    assert raw.headers["x-costmesh-request-id"] == extras["request_id"] == message.id.removeprefix("msg_")

    bearer = anthropic.AsyncAnthropic(base_url=base_url(mesh), auth_token=mesh.api_key("messages"), max_retries=0)
    pinned = await bearer.messages.create(
        model="claude-haiku-4-5", max_tokens=100, extra_headers={"anthropic-beta": "whatever-2025-01-01"},
        messages=[{"role": "user", "content": "Name a colour."}], extra_body={"costmesh": {"cache": {"bypass": True}}})
    assert pinned.model == "claude-haiku-4-5" and pinned.model_extra["costmesh"]["cache"]["status"] == "bypassed"


@pytest.mark.parametrize("model", ["auto", "claude-haiku-4-5"])
async def test_a_tool_loop_tool_use_result_final_text(mesh, model):
    client = sdk(mesh, f"messages-loop-{model}")
    messages = [{"role": "user", "content": "What is the weather forecast in Paris today?"}]
    first = await client.messages.create(model=model, max_tokens=400, tools=[WEATHER, STOCK], messages=messages,
                                         system=[{"type": "text", "text": "Use the tools when they help.",
                                                  "cache_control": {"type": "ephemeral"}}])
    assert first.stop_reason == "tool_use", first
    uses = [b for b in first.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and isinstance(uses[0].input["city"], str)
    assert uses[0].id
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": u.id, "content": run_tool(u.name, u.input)} for u in uses]})
    final = await client.messages.create(model=model, max_tokens=400, tools=[WEATHER, STOCK], messages=messages)
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.content and all(b.type == "text" for b in final.content) and final.content[0].text
    assert final.model_extra["costmesh"]["cost_usd"] > 0


async def test_the_sdks_stream_helper_assembles_text_and_tool_use(mesh):
    client = sdk(mesh, "messages-stream")
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=300,
        messages=[{"role": "user", "content": "Explain in two sentences what a linked list is."}],
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert text.strip() and message.content[0].text == text
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens > 0

    async with client.messages.stream(
        model="auto", max_tokens=300, tools=[WEATHER, STOCK], tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Is it raining in Lisbon?"}],
    ) as stream:
        events = [event async for event in stream]
        message = await stream.get_final_message()
    uses = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use" and uses[0].name == "get_weather" and uses[0].input["city"]
    assert any(e.type == "input_json" for e in events)
    delta = next(e for e in events if e.type == "message_delta")  # the bill, and the model that answered
    assert delta.model_extra["costmesh"]["model"] in load_catalog().models and message.model == "auto"


async def test_a_raw_sse_stream_is_anthropics(mesh):
    body = {"model": "claude-haiku-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "Say hello."}]}
    headers = {"x-api-key": mesh.api_key("messages"), "anthropic-version": "2023-06-01"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{mesh.http_url}/messages", json=body, headers=headers) as reply:
            assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream")
            raw = (await reply.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names[:3] == ["message_start", "ping", "content_block_start"] and names[-2:] == ["message_delta",
                                                                                           "message_stop"]
    for frame in frames:
        name, data = frame.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")


async def test_structured_output_and_an_image(mesh):
    client = sdk(mesh, "messages-json")
    schema = {"type": "object", "properties": {"country": {"type": "string"}, "capital": {"type": "string"}},
              "required": ["country", "capital"], "additionalProperties": False}
    message = await client.messages.create(
        model="auto", max_tokens=300, output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": "Give the capital of France."}])
    answer = json.loads(message.content[0].text)
    assert set(answer) >= {"country", "capital"}

    seen = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is in this picture?"}]}])
    assert seen.content[0].text.strip()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tools": [WEATHER, {"name": "f", "input_schema": {"type": "object", "properties": 3}}]},
         "tools.1.input_schema"),
        ({"tools": [WEATHER, WEATHER]}, "tools.1.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x",
                                                     "content": "1"}]}]},
         "messages.2.content.0.tool_use_id"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}]},
         "messages.0.content.0.type"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": "claude-2"}, "model"),
    ],
)
async def test_bad_input_is_an_anthropic_400_naming_the_parameter(mesh, kwargs, field):
    request = {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}], **kwargs}
    with pytest.raises(anthropic.BadRequestError) as error:
        await sdk(mesh).messages.create(**request)
    assert error.value.status_code == 400
    assert error.value.body["type"] == "error" and error.value.body["error"]["type"] == "invalid_request_error"
    assert error.value.body["error"]["message"].startswith(f"{field}: "), error.value.body


async def test_keys_and_the_missing_max_tokens_like_anthropic(mesh):
    bad = anthropic.AsyncAnthropic(base_url=base_url(mesh), api_key="cm_0000_forged", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as error:
        await bad.messages.create(model="auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert error.value.body["error"]["type"] == "authentication_error"
    async with aiohttp.ClientSession() as session:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        async with session.post(f"{mesh.http_url}/messages", json=body) as reply:
            assert reply.status == 401 and "x-api-key" in (await reply.json())["error"]["message"]
        headers = {"x-api-key": mesh.api_key("messages")}
        async with session.post(f"{mesh.http_url}/messages", json=body, headers=headers) as reply:
            error_body = await reply.json()
            assert reply.status == 400 and error_body["error"]["message"].startswith("max_tokens: ")
        async with session.post(f"{mesh.http_url}/messages", data=b"{", headers=headers) as reply:
            assert reply.status == 400 and (await reply.json())["type"] == "error"
    models = [m.id async for m in sdk(mesh).models.list()]
    assert models[0] == "auto" and set(models[1:]) == set(load_catalog().models)
    one = await sdk(mesh).models.retrieve("claude-haiku-4-5")
    assert one.type == "model" and one.id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError) as missing:
        await sdk(mesh).models.retrieve("claude-2")
    assert missing.value.body["error"]["type"] == "not_found_error"


async def test_an_upstream_that_keeps_failing_is_an_anthropic_error(mesh, simulator):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{simulator.url}/_sim/faults",
                                json={"model": "claude-haiku-4-5", "status": 500, "count": 100}) as r:
            assert r.status == 200
        try:
            with pytest.raises(anthropic.APIStatusError) as error:
                await sdk(mesh, "messages-5xx").messages.create(
                    model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "Say hi."}],
                    extra_body={"costmesh": {"cache": {"bypass": True}}})
            assert error.value.status_code >= 500 and error.value.body["type"] == "error"
            assert error.value.body["error"]["type"] in ("api_error", "overloaded_error")
        finally:
            async with session.post(f"{simulator.url}/_sim/reset") as r:
                assert r.status == 200
