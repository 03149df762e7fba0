"""Tools, tool results and structured output through `/v1/chat/completions`, with the official
`openai` SDK (unmodified, only its base_url and api_key set) against the in-process mesh, real
Redis and the simulator: a tool loop (call -> result -> final text), streamed tool calls
assembled by the SDK's own stream helper, JSON schema output parsed into a pydantic model,
and the 400s that name the OpenAI parameter."""

import json

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather forecast for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                   "required": ["city"], "additionalProperties": False},
    "strict": True}}
STOCK = {"type": "function", "function": {
    "name": "get_stock_price", "description": "Look up the latest stock price of a company ticker.",
    "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]}}}


class Capital(BaseModel):
    country: str
    capital: str
    population_millions: float


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


def sdk(mesh, tenant: str = "http-tools") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mesh.http_url, api_key=mesh.api_key(tenant), max_retries=0)


def run_tool(name: str, arguments: str) -> str:
    args = json.loads(arguments)
    if name == "get_weather":
        return f"{args['city']}: 18 degrees and sunny"
    return f"{args.get('ticker', '?')}: 123.45 USD"


@pytest.mark.parametrize("model", ["auto", "gpt-5-mini"])
async def test_a_tool_loop_call_result_final_text(mesh, model):
    client = sdk(mesh, f"tools-loop-{model}")
    messages = [{"role": "system", "content": "Use the tools when they help."},
                {"role": "user", "content": "What is the weather forecast in Paris today?"}]
    first = await client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, STOCK],
                                                 tool_choice="auto", max_tokens=300)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    bill = first.model_extra["costmesh"]
    assert bill["cost_usd"] > 0 and bill["cache"]["status"] == "miss"
    if model != "auto":
        assert first.model == model

    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": run_tool(c.function.name, c.function.arguments)}
                 for c in calls]
    final = await client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, STOCK],
                                                 max_tokens=300)
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
    assert final.model_extra["costmesh"]["cost_usd"] > 0 and final.usage.prompt_tokens > 0


async def test_streamed_tool_calls_are_assembled_by_the_sdks_stream_helper(mesh):
    client = sdk(mesh, "tools-stream")
    async with client.chat.completions.stream(
        model="gpt-5-mini", max_tokens=300, tools=[WEATHER, STOCK], tool_choice="required",
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What's the weather forecast in Berlin right now?"}],
    ) as stream:
        events = [event async for event in stream]
        completion = await stream.get_final_completion()
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert done and done[0].name == "get_weather"
    assert done[0].parsed_arguments["city"]  # a strict tool: the SDK parsed its arguments
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.tool_calls[0].id.startswith("call_")
    assert completion.usage.completion_tokens > 0
    chunks = [e.chunk for e in events if e.type == "chunk"]
    assert chunks[-1].choices == [] and chunks[-2].model_extra["costmesh"]["cost_usd"] > 0


async def test_a_raw_stream_of_tool_call_chunks(mesh):
    stream = await sdk(mesh, "tools-raw-stream").chat.completions.create(
        model="auto", max_tokens=300, stream=True, tools=[WEATHER], tool_choice={"type": "function", "function": {
            "name": "get_weather"}},
        messages=[{"role": "user", "content": "Is it raining in Lisbon?"}])
    chunks = [chunk async for chunk in stream]
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert pieces[0].index == 0 and pieces[0].id and pieces[0].type == "function"
    assert pieces[0].function.name == "get_weather"
    assert json.loads("".join(p.function.arguments or "" for p in pieces if p.index == 0))["city"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


async def test_json_schema_output_parses_into_a_pydantic_model(mesh):
    client = sdk(mesh, "tools-json")
    reply = await client.chat.completions.parse(
        model="auto", max_tokens=400, response_format=Capital,
        messages=[{"role": "user", "content": "Give the capital of France and its population."}])
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Capital), reply.choices[0].message.content
    assert reply.model_extra["costmesh"]["cost_usd"] > 0

    json_mode = await client.chat.completions.create(
        model="gpt-5-mini", max_tokens=300, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe the planet Mars as a JSON object."}])
    assert isinstance(json.loads(json_mode.choices[0].message.content), dict)


async def test_an_answer_with_tool_calls_is_served_again_from_the_exact_tier_only(mesh):
    client = sdk(mesh, "tools-cache")
    request = {"model": "gpt-5-mini", "max_tokens": 300, "tools": [WEATHER], "tool_choice": "required",
               "messages": [{"role": "user", "content": "What is the weather forecast in Madrid?"}]}
    first = await client.chat.completions.create(**request)
    await mesh.stores_settled()
    again = await client.chat.completions.create(**request)
    assert again.model_extra["costmesh"]["cache"]["status"] == "exact_hit"
    assert again.choices[0].message.tool_calls[0].function.arguments == \
        first.choices[0].message.tool_calls[0].function.arguments
    assert again.choices[0].finish_reason == "tool_calls" and again.usage.total_tokens == 0
    other_tools = await client.chat.completions.create(**{**request, "tools": [WEATHER, STOCK]})
    assert other_tools.model_extra["costmesh"]["cache"]["status"] == "miss"  # the tools are part of the scope


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                  "properties": 3}}}]},
         "tools[0].function.parameters"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 3}}}},
         "response_format.json_schema.schema"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]},
         "messages[1].tool_call_id"),
    ],
)
async def test_bad_tool_input_is_a_400_naming_the_parameter(mesh, kwargs, param):
    request = {"model": "auto", "messages": [{"role": "user", "content": "hello"}], **kwargs}
    with pytest.raises(openai.BadRequestError) as error:
        await sdk(mesh).chat.completions.create(**request)
    assert error.value.param == param, error.value.message

