"""The simulator's tool calls, tool results, JSON output and images, through the official SDKs."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import subprocess
import sys
import textwrap
import time

import aiohttp
import anthropic
import jsonschema
import openai
import pytest
from PIL import Image as PILImage
from pydantic import BaseModel

from costmesh.services.simulator import RunningSimulator, start_simulator

ALWAYS_WRONG = "A farmer has 17 sheep and buys 5 more. How many sheep are there?"  # weak_score 0 in the book
ALWAYS_RIGHT = "A baker has 12 loaves and sells 7. How many loaves are left?"  # weak_score 1

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression and return the number.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. 12 * 7"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look up a fact in the encyclopedia.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 5},
                "section": {"type": "string", "enum": ["history", "science", "literature"]},
            },
            "required": ["query", "section"],
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
            "additionalProperties": False,
        },
    },
}
LOCAL_TIME = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "description": "The local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
OPENAI_TOOLS = [CALCULATOR, LOOKUP]
ANTHROPIC_TOOLS = [
    {
        "name": t["function"]["name"],
        "description": t["function"]["description"],
        "input_schema": t["function"]["parameters"],
    }
    for t in OPENAI_TOOLS
]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "city": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "role": {"type": "string", "enum": ["engineer", "teacher", "doctor"]},
    },
    "required": ["name", "age", "city", "tags", "role"],
    "additionalProperties": False,
}
PROMPTS = [
    f"Question {i}: what is {i + 3} times {2 * i + 1}, and who discovered {topic}?"
    for i, topic in enumerate(
        [
            "penicillin",
            "gravity",
            "radium",
            "insulin",
            "oxygen",
            "electrons",
            "neptune",
            "dna",
            "x-rays",
            "vaccines",
            "helium",
            "pulsars",
            "quasars",
            "photosynthesis",
            "plate tectonics",
            "the neutron",
            "aspirin",
            "rubber",
            "nylon",
            "teflon",
            "the transistor",
            "radio waves",
            "cosmic rays",
            "the positron",
        ]
    )
]


class Answer(BaseModel):
    answer: str
    confidence: float
    sources: list[str]


@pytest.fixture(scope="module")
async def sim(tmp_path_factory) -> RunningSimulator:
    book = tmp_path_factory.mktemp("books") / "tools_routing_dev.jsonl.gz"
    with gzip.open(book, "wt") as fh:
        for prompt, score in ((ALWAYS_WRONG, 0.0), (ALWAYS_RIGHT, 1.0)):
            fh.write(json.dumps({"prompt": prompt, "weak_score": score, "strong_score": 1.0}) + "\n")
    running = await start_simulator(books=[str(book)], seed=3)
    yield running
    await running.stop()


@pytest.fixture(autouse=True)
async def clean(sim: RunningSimulator):
    sim.state.reset()
    yield


@pytest.fixture
def claude(sim: RunningSimulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.url, api_key="test-key", max_retries=0)


@pytest.fixture
def gpt(sim: RunningSimulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="test-key", max_retries=0)


def image_base64(fmt: str = "PNG", size: tuple[int, int] = (1024, 1024)) -> str:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def call_is_valid(tools: list[dict], name: str, arguments: str) -> bool:
    """What a quality gate checks: a known tool, JSON arguments that validate against its parameters."""
    schema = next((t["function"]["parameters"] for t in tools if t["function"]["name"] == name), None)
    if schema is None:
        return False
    try:
        jsonschema.validate(json.loads(arguments), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


def json_is_valid(text: str | None, schema: dict) -> bool:
    try:
        jsonschema.validate(json.loads(text or ""), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


# --- OpenAI: tool calls --------------------------------------------------------------------------


async def test_openai_tool_round_trip(gpt):
    messages = [{"role": "user", "content": "What is 12 times 7?"}]
    first = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "12 * 7"}
    plain = await gpt.chat.completions.create(model="gpt-5.1", messages=messages)
    assert first.usage.prompt_tokens > plain.usage.prompt_tokens + 40  # the tool definitions are counted
    assert first.usage.completion_tokens > 0

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "84"},
    ]
    final = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS)
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert "calculator tool returned: 84" in final.choices[0].message.content
    assert final.usage.prompt_tokens > first.usage.prompt_tokens


async def test_openai_streamed_tool_calls_as_openai_sends_them(gpt):
    messages = [{"role": "user", "content": "Look up who wrote the history of the Peloponnesian War."}]
    plain = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS)
    expected = [(c.function.name, c.function.arguments) for c in plain.choices[0].message.tool_calls]

    raw = await gpt.chat.completions.create(
        model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in raw]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    first = deltas[0]
    assert first.role == "assistant" and first.content is None
    head = first.tool_calls[0]
    assert head.index == 0 and head.id.startswith("call_") and head.type == "function"
    assert head.function.name == expected[0][0] and head.function.arguments == ""
    later = [tc for d in deltas[1:] for tc in d.tool_calls or []]
    assert later and all(tc.id is None and tc.function.name is None for tc in later)
    assert "".join(tc.function.arguments for tc in later) == expected[0][1]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens

    async with gpt.chat.completions.stream(
        model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS, stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()
    assert [(c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls] == expected
    assert final.choices[0].finish_reason == "tool_calls" and final.usage.total_tokens == plain.usage.total_tokens


async def test_openai_parallel_calls_and_tool_choice(gpt):
    tools = [WEATHER, LOCAL_TIME, CALCULATOR]
    messages = [{"role": "user", "content": "What is the weather and the local time in Paris?"}]
    both = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=tools)
    calls = both.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_local_time"]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert json.loads(calls[1].function.arguments) == {"city": "Paris"}
    assert len({c.id for c in calls}) == 2

    one = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=tools, parallel_tool_calls=False)
    assert [c.function.name for c in one.choices[0].message.tool_calls] == ["get_local_time"]  # the best match
    named = await gpt.chat.completions.create(
        model="gpt-5.1",
        messages=messages,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "calculator"}},
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["calculator"]
    none = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=tools, tool_choice="none")
    assert none.choices[0].finish_reason == "stop" and none.choices[0].message.tool_calls is None

    # Both results answered: a text answer using them; "required" still forces a call.
    messages.append(both.choices[0].message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C, light rain"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "14:05"},
    ]
    final = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=tools)
    text = final.choices[0].message.content
    assert "get_weather tool returned: 18 C, light rain" in text and "get_local_time tool returned: 14:05" in text
    forced = await gpt.chat.completions.create(model="gpt-5.1", messages=messages, tools=tools, tool_choice="required")
    assert forced.choices[0].finish_reason == "tool_calls"


async def test_openai_streamed_round_trip_with_sdk_accumulator(gpt):
    messages = [{"role": "user", "content": "What is (3 + 4) * 12?"}]
    async with gpt.chat.completions.stream(model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS) as stream:
        first = await stream.get_final_completion()
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {
        "expression": "( 3 + 4 ) * 12"
    }
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(include={"id", "type", "function"})]},
        {"role": "tool", "tool_call_id": call.id, "content": "84"},
    ]
    async with gpt.chat.completions.stream(model="gpt-5.1", messages=messages, tools=OPENAI_TOOLS) as stream:
        pieces = [event.delta async for event in stream if event.type == "content.delta"]
        final = await stream.get_final_completion()
    assert "".join(pieces) == final.choices[0].message.content and "returned: 84" in final.choices[0].message.content


async def test_openai_strict_pydantic_tool_parses(gpt):
    class GetWeather(BaseModel):
        location: str
        unit: str

    tool = openai.pydantic_function_tool(GetWeather, name="get_weather", description="Weather in a city.")
    completion = await gpt.chat.completions.parse(
        model="gpt-5-nano", messages=[{"role": "user", "content": "What is the weather in Lisbon today?"}], tools=[tool]
    )
    call = completion.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, GetWeather)
    assert call.function.parsed_arguments.location == "Lisbon"


# --- OpenAI: JSON output -------------------------------------------------------------------------


async def test_openai_parse_with_pydantic_and_strict_schema(gpt):
    for model in ("gpt-5-nano", "gpt-5-mini", "gpt-5.1"):
        for prompt in PROMPTS[:8]:
            completion = await gpt.chat.completions.parse(
                model=model, messages=[{"role": "user", "content": prompt}], response_format=Answer
            )
            parsed = completion.choices[0].message.parsed
            assert isinstance(parsed, Answer) and parsed.answer
            assert json_is_valid(completion.choices[0].message.content, Answer.model_json_schema())

    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    prompt = "Extract the person: Ada Lovelace, 36, lives in London, works as an engineer."
    done = await gpt.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": prompt}], response_format=response_format
    )
    person = json.loads(done.choices[0].message.content)
    jsonschema.validate(person, PERSON)
    assert person["name"] == "Ada Lovelace" and person["city"] == "London"
    assert person["age"] == 36 and person["role"] == "engineer"

    async with gpt.chat.completions.stream(
        model="gpt-5-nano", messages=[{"role": "user", "content": prompt}], response_format=response_format
    ) as stream:
        streamed = await stream.get_final_completion()
    assert streamed.choices[0].message.content == done.choices[0].message.content


async def test_openai_json_object_mode(gpt):
    with pytest.raises(openai.BadRequestError) as err:
        await gpt.chat.completions.create(
            model="gpt-5.1",
            messages=[{"role": "user", "content": "Name a colour."}],
            response_format={"type": "json_object"},
        )
    assert "must contain the word 'json'" in err.value.message and err.value.param == "messages"
    done = await gpt.chat.completions.create(
        model="gpt-5.1",
        messages=[{"role": "user", "content": "Name a colour, as JSON."}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(done.choices[0].message.content)["answer"], str)


# --- cheap models get it wrong sometimes, premium models never --------------------------------


async def test_cheap_models_make_mistakes_premium_none(gpt, claude):
    loose = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}  # not strict
    failures: dict[str, int] = {}
    for model in ("gpt-5-nano", "gpt-5.1"):
        bad = 0
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            done = await gpt.chat.completions.create(model=model, messages=messages, tools=OPENAI_TOOLS)
            calls = done.choices[0].message.tool_calls or []
            bad += not calls or not all(
                call_is_valid(OPENAI_TOOLS, c.function.name, c.function.arguments) for c in calls
            )
            out = await gpt.chat.completions.create(model=model, messages=messages, response_format=loose)
            bad += not json_is_valid(out.choices[0].message.content, PERSON)
        failures[model] = bad
    for model in ("claude-haiku-4-5", "claude-opus-4-5"):
        bad = 0
        for prompt in PROMPTS:
            done = await claude.messages.create(
                model=model,
                max_tokens=300,
                messages=[{"role": "user", "content": prompt}],
                tools=ANTHROPIC_TOOLS,
                tool_choice={"type": "any"},
            )
            uses = [b for b in done.content if b.type == "tool_use"]
            bad += not uses or not all(call_is_valid(OPENAI_TOOLS, u.name, json.dumps(u.input)) for u in uses)
        failures[model] = bad
    assert failures["gpt-5.1"] == 0 and failures["claude-opus-4-5"] == 0
    assert 0 < failures["gpt-5-nano"] < 2 * len(PROMPTS) and 0 < failures["claude-haiku-4-5"] < len(PROMPTS)

    # Strict tools and strict schemas always validate, even on the cheapest model.
    strict_tools = [{**t, "function": {**t["function"], "strict": True}} for t in (CALCULATOR, WEATHER)]
    strict = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        done = await gpt.chat.completions.create(
            model="gpt-5-nano", messages=messages, tools=strict_tools, tool_choice="required"
        )
        assert all(
            call_is_valid(strict_tools, c.function.name, c.function.arguments)
            for c in done.choices[0].message.tool_calls
        )
        out = await gpt.chat.completions.create(model="gpt-5-nano", messages=messages, response_format=strict)
        assert json_is_valid(out.choices[0].message.content, PERSON)


async def test_mistakes_follow_the_books_weak_score(gpt):
    for prompt, wrong in ((ALWAYS_WRONG, True), (ALWAYS_RIGHT, False)):
        for model in ("gpt-5-nano", "gpt-5-mini"):
            done = await gpt.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}], tools=OPENAI_TOOLS, tool_choice="required"
            )
            call = done.choices[0].message.tool_calls[0]
            assert call_is_valid(OPENAI_TOOLS, call.function.name, call.function.arguments) is not wrong
            again = await gpt.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}], tools=OPENAI_TOOLS, tool_choice="required"
            )
            assert again.choices[0].message.tool_calls[0].function.arguments == call.function.arguments


# --- OpenAI: images and bad input ----------------------------------------------------------------


async def test_openai_images_counted_and_checked(gpt):
    text = {"type": "text", "text": "What is in this picture?"}
    plain = await gpt.chat.completions.create(model="gpt-5.1", messages=[{"role": "user", "content": [text]}])

    async def tokens(url: str, detail: str = "auto") -> int:
        part = {"type": "image_url", "image_url": {"url": url, "detail": detail}}
        done = await gpt.chat.completions.create(model="gpt-5.1", messages=[{"role": "user", "content": [text, part]}])
        return done.usage.prompt_tokens - plain.usage.prompt_tokens

    assert await tokens("data:image/png;base64," + image_base64()) == 765  # 768x768 after scaling: 4 tiles
    assert await tokens("data:image/png;base64," + image_base64(), "low") == 85
    assert await tokens("data:image/jpeg;base64," + image_base64("JPEG", (512, 512))) == 255
    assert await tokens("data:image/webp;base64," + image_base64("WEBP", (300, 200))) == 255
    assert await tokens("data:image/gif;base64," + image_base64("GIF", (1500, 600))) == 85 + 170 * 6
    assert await tokens("https://example.com/cat.png") == 765

    with pytest.raises(openai.BadRequestError) as err:
        await tokens("data:image/bmp;base64," + image_base64("BMP", (10, 10)))
    assert err.value.code == "invalid_image_format" and "unsupported image" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        await tokens("data:image/png;base64,bm90IGFuIGltYWdl")
    assert "does not represent a valid image" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        await tokens("ftp://example.com/cat.png")
    assert err.value.param == "messages[0].content[1].image_url.url"
    with pytest.raises(openai.BadRequestError) as err:
        await gpt.chat.completions.create(
            model="gpt-5.1",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "https://x.io/a.png"}}]},
            ],
        )
    assert "Image URLs are only allowed for messages with role 'user'" in err.value.message


async def test_openai_bad_tool_input_is_a_400(gpt):
    user = {"role": "user", "content": "What is 2 + 2?"}

    async def rejected(**kwargs) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as err:
            await gpt.chat.completions.create(model="gpt-5.1", **kwargs)
        assert err.value.status_code == 400 and err.value.type == "invalid_request_error"
        return err.value

    bad_schema = {
        "type": "function",
        "function": {"name": "calc", "parameters": {"type": "object", "properties": {"x": {"type": "strin"}}}},
    }
    err = await rejected(messages=[user], tools=[bad_schema])
    assert err.code == "invalid_function_parameters" and err.param == "tools[0].function.parameters"
    assert err.body["message"].startswith("Invalid schema for function 'calc': In context=('properties', 'x', 'type')")
    not_object = {"type": "function", "function": {"name": "calc", "parameters": {"type": "string"}}}
    assert (
        "schema must be a JSON Schema of 'type: \"object\"'"
        in (await rejected(messages=[user], tools=[not_object])).message
    )
    open_strict = {"type": "function", "function": {**LOOKUP["function"], "strict": True}}
    assert (
        "'additionalProperties' is required to be supplied and to be false"
        in (await rejected(messages=[user], tools=[open_strict])).message
    )
    bad_name = {"type": "function", "function": {"name": "has space", "parameters": {}}}
    assert (await rejected(messages=[user], tools=[bad_name])).param == "tools[0].function.name"

    orphan = {"role": "tool", "tool_call_id": "call_nope", "content": "4"}
    err = await rejected(messages=[user, orphan], tools=[CALCULATOR])
    assert "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'" in err.message
    assert err.param == "messages.[1].role"
    call = {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}
    asked = {"role": "assistant", "content": None, "tool_calls": [call]}
    err = await rejected(messages=[user, asked, {**orphan, "tool_call_id": "call_2"}], tools=[CALCULATOR])
    assert "'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message" in err.message
    err = await rejected(messages=[user, asked, user], tools=[CALCULATOR])
    assert "did not have response messages: call_1" in err.message
    err = await rejected(messages=[user], tool_choice="required")
    assert err.param == "tool_choice" and "only allowed when 'tools' are specified" in err.message
    err = await rejected(
        messages=[user], tools=[CALCULATOR], tool_choice={"type": "function", "function": {"name": "x"}}
    )
    assert err.param == "tool_choice"
    err = await rejected(
        messages=[user], response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": 5}}}
    )
    assert err.body["message"].startswith("Invalid schema for response_format 'p'")


# --- Anthropic: tool use -------------------------------------------------------------------------


async def test_anthropic_tool_round_trip_plain_and_streamed(claude):
    messages = [{"role": "user", "content": "What is 12 times 7?"}]
    first = await claude.messages.create(
        model="claude-opus-4-5", max_tokens=400, messages=messages, tools=ANTHROPIC_TOOLS
    )
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert use.id.startswith("toolu_") and use.name == "calculator" and use.input == {"expression": "12 * 7"}

    async with claude.messages.stream(
        model="claude-opus-4-5", max_tokens=400, messages=messages, tools=ANTHROPIC_TOOLS
    ) as stream:
        streamed = await stream.get_final_message()
    assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in streamed.content] == [
        (b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in first.content
    ]
    assert streamed.stop_reason == "tool_use" and streamed.usage.output_tokens == first.usage.output_tokens

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "84"}]},
    ]
    final = await claude.messages.create(
        model="claude-opus-4-5", max_tokens=400, messages=messages, tools=ANTHROPIC_TOOLS
    )
    assert final.stop_reason == "end_turn" and [b.type for b in final.content] == ["text"]
    assert "calculator tool returned: 84" in final.content[0].text
    async with claude.messages.stream(
        model="claude-opus-4-5", max_tokens=400, messages=messages, tools=ANTHROPIC_TOOLS
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == final.content[0].text


async def test_anthropic_stream_events_for_tool_use(claude):
    raw = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=400,
        messages=[{"role": "user", "content": "Look up the history of Rome."}],
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": "lookup"},
        stream=True,
    )
    events = [event async for event in raw]
    assert events[1].type == "content_block_start" and events[1].index == 0
    block = events[1].content_block
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {}
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert deltas and all(d.type == "input_json_delta" for d in deltas)
    arguments = json.loads("".join(d.partial_json for d in deltas))
    assert arguments["section"] == "history" and "rome" in arguments["query"]
    assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "tool_use" and events[-2].usage.output_tokens > 0


async def test_anthropic_tool_choice_and_parallel(claude):
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "input_schema": t["function"]["parameters"],
        }
        for t in (WEATHER, LOCAL_TIME)
    ]
    messages = [{"role": "user", "content": "What is the weather and the local time in Tokyo?"}]
    both = await claude.messages.create(model="claude-opus-4-5", max_tokens=400, messages=messages, tools=tools)
    assert [b.name for b in both.content if b.type == "tool_use"] == ["get_weather", "get_local_time"]
    single = await claude.messages.create(
        model="claude-opus-4-5",
        max_tokens=400,
        messages=messages,
        tools=tools,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in single.content] == ["tool_use"]  # forced: no preamble text
    none = await claude.messages.create(
        model="claude-opus-4-5", max_tokens=400, messages=messages, tools=tools, tool_choice={"type": "none"}
    )
    assert none.stop_reason == "end_turn" and [b.type for b in none.content] == ["text"]

    uses = [b for b in both.content if b.type == "tool_use"]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in both.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": [{"type": "text", "text": "25 C"}]},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": "service down", "is_error": True},
            ],
        },
    ]
    final = await claude.messages.create(model="claude-opus-4-5", max_tokens=400, messages=messages, tools=tools)
    text = final.content[0].text
    assert "get_weather tool returned: 25 C" in text and "get_local_time tool reported an error: service down" in text


async def test_anthropic_structured_output(claude):
    for model in ("claude-haiku-4-5", "claude-opus-4-5"):
        for prompt in PROMPTS[:6]:
            parsed = await claude.messages.parse(
                model=model, max_tokens=800, messages=[{"role": "user", "content": prompt}], output_format=Answer
            )
            assert isinstance(parsed.parsed_output, Answer)
    schema = PERSON
    done = await claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=400,
        messages=[{"role": "user", "content": "Extract: Grace Hopper, 85, a teacher in Arlington."}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    person = json.loads(done.content[0].text)
    jsonschema.validate(person, schema)
    assert person["age"] == 85 and person["role"] == "teacher"
    with pytest.raises(anthropic.BadRequestError) as err:
        await claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=400,
            messages=[{"role": "user", "content": "x"}],
            output_config={"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}},
        )
    assert "additionalProperties" in err.value.message


async def test_anthropic_images_counted_and_checked(claude):
    question = {"type": "text", "text": "Describe the image."}
    plain = await claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": [question]}]
    )

    def image(media_type: str, data: str) -> dict:
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}

    with_image = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": [image("image/png", image_base64()), question]}],
    )
    assert with_image.usage.input_tokens - plain.usage.input_tokens == 1399  # 1024 x 1024 / 750
    by_url = await claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x.io/a.png"}}, question],
            }
        ],
    )
    assert by_url.usage.input_tokens == with_image.usage.input_tokens
    counted = await claude.messages.count_tokens(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": [image("image/png", image_base64()), question]}],
    )
    assert counted.input_tokens == with_image.usage.input_tokens

    async def rejected(block: dict) -> str:
        with pytest.raises(anthropic.BadRequestError) as err:
            await claude.messages.create(
                model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": [block, question]}]
            )
        return err.value.body["error"]["message"]

    assert await rejected(image("image/bmp", image_base64("BMP", (8, 8)))) == (
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
        "'image/gif' or 'image/webp'"
    )
    assert await rejected(image("image/jpeg", image_base64())) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/jpeg"
    )
    assert (await rejected(image("image/png", "bm90IGFuIGltYWdl"))).endswith("Could not process image")


async def test_anthropic_bad_tool_input_is_a_400(claude):
    async def rejected(messages: list[dict], tools: list[dict] | None = None, **kwargs) -> str:
        with pytest.raises(anthropic.BadRequestError) as err:
            await claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                messages=messages,
                **({"tools": tools} if tools is not None else {}),
                **kwargs,
            )
        assert err.value.status_code == 400 and err.value.body["error"]["type"] == "invalid_request_error"
        return err.value.body["error"]["message"]

    user = {"role": "user", "content": "What is 2 + 2?"}
    use = {"type": "tool_use", "id": "toolu_01a", "name": "calculator", "input": {"expression": "2 + 2"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01b", "content": "4"}
    message = await rejected(
        [user, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}], ANTHROPIC_TOOLS
    )
    assert message == (
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01b. Each `tool_result` "
        "block must have a corresponding `tool_use` block in the previous message."
    )
    message = await rejected([user, {"role": "assistant", "content": [use]}, user], ANTHROPIC_TOOLS)
    assert message.startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01a."
    )
    message = await rejected(
        [
            user,
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{**result, "tool_use_id": "toolu_01a"}]},
        ]
    )
    assert message == "Requests which include `tool_use` or `tool_result` blocks must define tools."
    broken = [{"name": "calc", "input_schema": {"type": "object", "properties": {"x": {"type": "strin"}}}}]
    assert (await rejected([user], broken)).startswith("tools.0.custom.input_schema: JSON schema is invalid.")
    assert await rejected([user], [{"name": "calc"}]) == "tools.0.custom.input_schema: Field required"
    message = await rejected([user], ANTHROPIC_TOOLS, tool_choice={"type": "tool", "name": "nope"})
    assert "nope" in message


# --- bounded work on hostile schemas ---------------------------------------------------------


async def test_recursive_and_deep_schemas_do_not_wedge(gpt, sim):
    recursive = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}, "minItems": 2},
        },
        "required": ["name", "children"],
    }
    tool = {"type": "function", "function": {"name": "tree", "description": "Build a tree", "parameters": recursive}}
    started = time.monotonic()
    done = await gpt.chat.completions.create(
        model="gpt-5.1", messages=[{"role": "user", "content": "Build a tree"}], tools=[tool], tool_choice="required"
    )
    assert done.choices[0].finish_reason == "tool_calls" and time.monotonic() - started < 5

    deep: dict = {"type": "string"}
    for _ in range(200):
        deep = {"type": "object", "properties": {"a": deep}}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as session:
        body = {
            "model": "gpt-5.1",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "deep", "parameters": deep}}],
        }
        async with session.post(sim.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 400 and "maximum depth" in (await resp.json())["error"]["message"]
        nested = "[" * 100_000 + "]" * 100_000
        async with session.post(
            sim.url + "/v1/chat/completions", data=nested, headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
    assert time.monotonic() - started < 10
    await asyncio.sleep(0)


def test_prompt_reading_is_linear():
    """Prompts built to make a scanner quadratic: 1 MB each, read in well under a minute."""
    script = textwrap.dedent("""
        from costmesh.services.simulator.prompt_words import read_prompt, stems
        from costmesh.services.simulator.text import json_pieces
        n = 1_000_000
        for prompt in ("x" * n, "1+" * (n // 2), "(" * n, "1,000" * (n // 5), "9" * n, "A b " * (n // 4),
                       "in Paris " * (n // 9), "12 times " * (n // 9), "\\n" * n):
            facts = read_prompt(prompt)
            assert facts.expression is None or len(facts.expression) <= 200
            stems(prompt, 4096)
            json_pieces(prompt)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_a_megabyte_prompt_with_tools_is_answered(gpt):
    prompt = "Please compute 1 + 2 for me. " + "lorem ipsum " * 80_000
    started = time.monotonic()
    done = await gpt.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": prompt}], tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert done.choices[0].finish_reason == "tool_calls" and time.monotonic() - started < 30


async def test_images_are_part_of_the_cached_prefix(gpt):
    def asking(image: str) -> list[dict]:
        parts = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}} for _ in range(2)]
        return [{"role": "user", "content": [*parts, {"type": "text", "text": "Compare these pictures."}]}]

    red = image_base64()
    first = await gpt.chat.completions.create(model="gpt-5.1", messages=asking(red))
    again = await gpt.chat.completions.create(model="gpt-5.1", messages=asking(red))
    assert first.usage.prompt_tokens > 1536 and first.usage.prompt_tokens_details.cached_tokens == 0
    assert again.usage.prompt_tokens_details.cached_tokens >= 1408  # the two images' tiles, in 128-token steps
    buffer = io.BytesIO()
    PILImage.new("RGB", (1024, 1024), (10, 200, 10)).save(buffer, format="PNG")
    other = await gpt.chat.completions.create(
        model="gpt-5.1", messages=asking(base64.b64encode(buffer.getvalue()).decode())
    )
    assert other.usage.prompt_tokens == first.usage.prompt_tokens
    assert other.usage.prompt_tokens_details.cached_tokens == 0  # another image: another prefix


async def test_anthropic_continues_a_prefilled_assistant_turn(claude):
    ask = [{"role": "user", "content": "Give the capital of France as a JSON object."}]
    reply = await claude.messages.create(model="claude-opus-4-5", max_tokens=200,
                                         messages=[*ask, {"role": "assistant", "content": "{"}])
    text = reply.content[0].text
    assert not text.lstrip().startswith("{")  # the prefill is not repeated
    assert isinstance(json.loads("{" + text), dict)
    prose = await claude.messages.create(model="claude-opus-4-5", max_tokens=200,
                                         messages=[*ask, {"role": "assistant", "content": "The capital"}])
    assert prose.content[0].text and not prose.content[0].text.startswith("The capital")
    with pytest.raises(anthropic.BadRequestError, match="trailing whitespace"):
        await claude.messages.create(model="claude-opus-4-5", max_tokens=200,
                                     messages=[*ask, {"role": "assistant", "content": "{ "}])
