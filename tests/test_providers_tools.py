"""Tools, tool results, structured output and images through the providers layer: the requests
both adapters build, the answers they read back (streamed or not), the cache breakpoints over
tool definitions, vLLM's refusal, the batches' payloads and results, and the whole path from the
router's provider client through the providers service and the official SDKs to the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib

import anthropic
import grpc
import httpx2
import jsonschema
import openai
import pytest

from costmesh.api.common.v1 import common_pb2
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.catalog import ModelSpec, load_catalog
from costmesh.config import Env
from costmesh.convert import messages_to_pb
from costmesh.domain import Generation, Image, Message, Part, Role, Sampling, ToolCall
from costmesh.errors import InvalidRequest
from costmesh.output_spec import Capability, ChoiceMode, FormatType, OutputSpec, ResponseFormat, Tool, ToolChoice
from costmesh.rpc.server import start_service
from costmesh.services.providers import anthropic_adapter, anthropic_structured_output, openai_adapter
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.anthropic_content import TOOLS, UNPARSED_ARGUMENTS, tool_param
from costmesh.services.providers.batch_registry import BatchRegistry
from costmesh.services.providers.batches import AnthropicBatches, BatchCall, OpenAIBatches
from costmesh.services.providers.cache_breakpoints import (
    MAX_BREAKPOINTS,
    AutoBreakpoints,
    ClientBreakpoints,
    layout,
)
from costmesh.services.providers.image_tokens import image_tokens
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.providers.service import SPEC
from costmesh.services.providers.servicer import model_to_pb
from costmesh.services.providers.vllm_adapter import check_servable
from costmesh.services.router.grpc_provider_client import GrpcProviderClient
from costmesh.services.router.provider_client import ProviderCall
from costmesh.services.simulator import start_simulator
from costmesh.tokens import count_tokens, get_counter, tool_text

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

CATALOG = load_catalog()
SONNET = CATALOG.model("claude-sonnet-4-5")  # min cacheable 1024
MINI = CATALOG.model("gpt-5-mini")
TINY = ModelSpec(id="tiny-llama", provider="vllm", input=0.10, output=0.40)  # self-hosted: text only

WEATHER = Tool(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The local time in a city.", {"type": "object", "properties": {"city": {"type": "string"}},
                                                      "required": ["city"], "additionalProperties": False},
            strict=True)
TOOLS_SPEC = OutputSpec(tools=(WEATHER, TIME))
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
AS_PERSON = OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "person", PERSON, strict=True))
AS_JSON = OutputSpec(response_format=ResponseFormat(FormatType.JSON_OBJECT))
PNG = b"\x89PNG fake image"

# an agent's second turn: two parallel calls answered, the second one failed
CALLS = (ToolCall("call_1", "get_weather", '{"city": "Paris"}'), ToolCall("call_2", "get_time", '{"city":"Paris"}'))
AGENT = (
    Message.of(Role.SYSTEM, "You are a travel assistant."),
    Message.of(Role.USER, "Weather and time in Paris?"),
    Message(Role.ASSISTANT, (Part(text=""),), tool_calls=CALLS),
    Message(Role.TOOL, (Part(text="18C, clear"),), tool_call_id="call_1"),
    Message(Role.TOOL, (Part(text="clock unavailable"),), tool_call_id="call_2", is_error=True),
)


def spec(choice: ToolChoice = ToolChoice(), parallel: bool | None = None, tools=(WEATHER, TIME)) -> OutputSpec:
    return OutputSpec(tools=tools, choice=choice, parallel_tool_calls=parallel)


def claude_request(messages, output=OutputSpec(), policy=None, **kwargs) -> dict:
    return anthropic_adapter.build_request(SONNET, messages, Sampling(max_tokens=64), policy or ClientBreakpoints(),
                                           "t1", output, **kwargs)


def gpt_request(messages, output=OutputSpec()) -> dict:
    return openai_adapter.build_request(MINI, messages, Sampling(max_tokens=64), "t1", output)


# -- OpenAI requests ------------------------------------------------------------------------------


def test_openai_tools_choice_and_parallel():
    body = gpt_request(AGENT[:2], spec(parallel=False))
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city.",
                                          "parameters": dict(WEATHER.parameters), "strict": False}},
        {"type": "function", "function": {"name": "get_time", "description": "The local time in a city.",
                                          "parameters": dict(TIME.parameters), "strict": True}},
    ]
    assert body["parallel_tool_calls"] is False and "tool_choice" not in body  # auto: OpenAI's default
    choices = {
        ChoiceMode.NONE: "none",
        ChoiceMode.REQUIRED: "required",
        ChoiceMode.TOOL: {"type": "function", "function": {"name": "get_time"}},
    }
    for mode, expected in choices.items():
        choice = ToolChoice(mode, "get_time" if mode == ChoiceMode.TOOL else "")
        assert gpt_request(AGENT[:2], spec(choice))["tool_choice"] == expected
    plain = gpt_request(AGENT[:2])
    assert not {"tools", "tool_choice", "parallel_tool_calls", "response_format"} & set(plain)


def test_openai_tool_calls_and_results_in_the_conversation():
    messages = gpt_request(AGENT, TOOLS_SPEC)["messages"]
    assert messages[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"city":"Paris"}'}},
    ]}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "18C, clear"}
    assert messages[4] == {"role": "tool", "tool_call_id": "call_2", "content": "Error: clock unavailable"}


def test_openai_long_call_ids_map_the_same_for_call_and_result():
    long_id = "toolu_" + "x" * 60
    messages = (
        Message.of(Role.USER, "hi"),
        Message(Role.ASSISTANT, (), tool_calls=(ToolCall(long_id, "get_weather", "{}"),)),
        Message(Role.TOOL, (Part(text="ok"),), tool_call_id=long_id),
    )
    sent = gpt_request(messages, TOOLS_SPEC)["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert len(call_id) <= 40 and call_id == sent[2]["tool_call_id"]


def test_openai_images_in_user_messages_only():
    body = gpt_request((Message(Role.USER, (Part(text="What is it?"), Part(image=Image(url="https://x/y.png")))),))
    assert body["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    result_with_image = (*AGENT[:3], Message(Role.TOOL, (Part(image=Image("image/png", PNG)),), tool_call_id="call_1"))
    with pytest.raises(InvalidRequest, match=r"messages\[3\]"):
        gpt_request(result_with_image, TOOLS_SPEC)


def test_openai_json_modes_are_its_native_response_format():
    body = gpt_request(AGENT[:2], AS_JSON)
    assert body["response_format"] == {"type": "json_object"}
    # OpenAI's JSON mode wants the word "json" in the conversation: said last when nobody did
    assert body["messages"][-1] == {"role": "system", "content": openai_adapter.JSON_INSTRUCTION}
    said = (Message.of(Role.USER, "Reply in JSON please."),)
    assert gpt_request(said, AS_JSON)["messages"] == [{"role": "user", "content": "Reply in JSON please."}]
    assert gpt_request(AGENT[:2], AS_PERSON)["messages"] == gpt_request(AGENT[:2])["messages"]
    assert gpt_request(AGENT[:2], AS_PERSON)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    unnamed = OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, schema=PERSON))
    assert gpt_request(AGENT[:2], unnamed)["response_format"]["json_schema"]["name"] == "response"


def test_openai_prompt_cache_key_covers_the_tools():
    key = openai_adapter.prompt_cache_key
    assert key("t1", AGENT, TOOLS_SPEC) != key("t1", AGENT)
    assert key("t1", AGENT, TOOLS_SPEC) != key("t1", AGENT, spec(tools=(WEATHER,)))
    assert key("t1", AGENT, TOOLS_SPEC) == key("t1", AGENT[:2], TOOLS_SPEC)  # the conversation is not the key
    assert key("", (Message.of(Role.USER, "hi"),), TOOLS_SPEC) is not None
    assert gpt_request(AGENT, TOOLS_SPEC)["prompt_cache_key"] == key("t1", AGENT, TOOLS_SPEC)


# -- Anthropic requests ---------------------------------------------------------------------------


def test_anthropic_tools_and_choice():
    body = claude_request(AGENT[:2], TOOLS_SPEC)
    assert body["tools"] == [
        {"name": "get_weather", "description": "The current weather in a city.",
         "input_schema": dict(WEATHER.parameters)},
        {"name": "get_time", "description": "The local time in a city.", "input_schema": dict(TIME.parameters),
         "strict": True},
    ]
    assert "tool_choice" not in body  # auto with parallel calls: Anthropic's default
    cases = [
        (spec(parallel=False), {"type": "auto", "disable_parallel_tool_use": True}),
        (spec(ToolChoice(ChoiceMode.REQUIRED)), {"type": "any"}),
        (spec(ToolChoice(ChoiceMode.REQUIRED), parallel=False), {"type": "any", "disable_parallel_tool_use": True}),
        (spec(ToolChoice(ChoiceMode.TOOL, "get_time")), {"type": "tool", "name": "get_time"}),
        (spec(ToolChoice(ChoiceMode.NONE), parallel=False), {"type": "none"}),
    ]
    for output, expected in cases:
        assert claude_request(AGENT[:2], output)["tool_choice"] == expected


def test_anthropic_tool_calls_then_results_merged_into_one_user_turn():
    body = claude_request(AGENT, TOOLS_SPEC)
    assert body["system"] == [{"type": "text", "text": "You are a travel assistant."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [  # the empty text beside the calls is left out
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {"city": "Paris"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, clear"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "clock unavailable", "is_error": True},
    ]
    then = (*AGENT, Message.of(Role.ASSISTANT, "Sunny."), Message.of(Role.USER, "Thanks"))
    assert [m["role"] for m in claude_request(then, TOOLS_SPEC)["messages"]] == [
        "user", "assistant", "user", "assistant", "user"]


def test_anthropic_tool_result_with_an_image_and_ids_it_would_refuse():
    odd_id = "call:1/a"
    messages = (
        Message.of(Role.USER, "Show me the chart."),
        Message(Role.ASSISTANT, (Part(text="Fetching it."),), tool_calls=(ToolCall(odd_id, "get_weather", ""),)),
        Message(Role.TOOL, (Part(text="the chart:"), Part(image=Image("image/png", PNG))), tool_call_id=odd_id),
    )
    turns = claude_request(messages, TOOLS_SPEC)["messages"]
    text, call = turns[1]["content"]
    assert text == {"type": "text", "text": "Fetching it."}
    assert call["input"] == {}  # empty arguments: no arguments
    result = turns[2]["content"][0]
    assert call["id"] == result["tool_use_id"] != odd_id and call["id"].startswith("cm_")
    assert result["content"] == [
        {"type": "text", "text": "the chart:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
    ]


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"Paris"'])
def test_anthropic_arguments_that_are_no_json_object_are_kept_whole(arguments):
    messages = (Message.of(Role.USER, "hi"),
                Message(Role.ASSISTANT, (), tool_calls=(ToolCall("call_1", "get_weather", arguments),)),
                Message(Role.TOOL, (Part(text="bad arguments"),), tool_call_id="call_1", is_error=True))
    call = claude_request(messages, TOOLS_SPEC)["messages"][1]["content"][0]
    assert call["input"] == {UNPARSED_ARGUMENTS: arguments}


def test_anthropic_conversation_with_calls_but_no_tools_gets_their_definitions_and_no_new_calls():
    body = claude_request(AGENT)
    assert body["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}},
                             {"name": "get_time", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "none"}


def test_anthropic_json_schema_is_structured_outputs_through_the_sdk_transform():
    loose = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    body = claude_request(AGENT[:2], OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "n", loose)))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": anthropic.transform_schema(loose)}}
    schema = body["output_config"]["format"]["schema"]
    assert schema["additionalProperties"] is False  # what the API requires of every object
    assert "system" in body and body["system"] == [{"type": "text", "text": "You are a travel assistant."}]
    assert body["messages"][-1]["role"] == "user"  # no prefill
    with pytest.raises(InvalidRequest, match="response_format.schema_json"):
        claude_request(AGENT[:2], OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "x", {})))


def test_anthropic_json_object_is_an_instruction_and_a_prefill():
    body = claude_request(AGENT[:2], AS_JSON)
    assert body["system"][-1] == {"type": "text", "text": anthropic_structured_output.JSON_INSTRUCTION}
    assert body["messages"][-1] == {"role": "assistant", "content": "{"}
    assert "output_config" not in body
    # tools may be called: the answer may start with a call, so no prefill
    with_tools = claude_request(AGENT[:2], OutputSpec(tools=(WEATHER,), response_format=AS_JSON.response_format))
    assert with_tools["messages"][-1]["role"] == "user"
    assert with_tools["system"][-1]["text"] == anthropic_structured_output.JSON_INSTRUCTION
    # a batch's results are read without the request: no prefill there either
    assert claude_request(AGENT[:2], AS_JSON, prefill=False)["messages"][-1]["role"] == "user"
    # the client's own prefill is kept as it is
    own = claude_request((*AGENT[:2], Message.of(Role.ASSISTANT, '{"a"')), AS_JSON)
    assert own["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": '{"a"'}]}


def test_prefilled_answers_put_the_brace_back_once():
    join = anthropic_structured_output.with_prefill
    assert join("{", '"a": 1}') == '{"a": 1}'
    assert join("{", ' {"a": 1}') == ' {"a": 1}'  # a model that wrote the brace again
    assert join("", "free text") == "free text"
    stream = anthropic_structured_output.PrefilledStream("{")
    assert [stream.feed(d) for d in ("", "\n", '"a"', ": 1}")] == ["", "", '{\n"a"', ": 1}"]
    assert stream.flush() == ""
    blank = anthropic_structured_output.PrefilledStream("{")
    assert blank.feed(" ") == "" and blank.flush() == "{ "


# -- cache breakpoints over tools and images -----------------------------------------------------


def long_tools(n: int = 3, words: int = 400) -> tuple[Tool, ...]:
    return tuple(Tool(f"tool_{i}", " ".join(f"detail{j} of tool {i}." for j in range(words))) for i in range(n))


def test_layout_puts_tool_definitions_first_and_counts_them_as_sent():
    tools = long_tools(2, 10)
    slots = layout(AGENT, tools)
    assert [s.at for s in slots[:3]] == [(TOOLS, 0), (TOOLS, 1), (0, 0)]
    assert slots[0].tokens == count_tokens(tool_text(tool_param(tools[0])))
    # the conversation's turns as sent: the two results are one user turn (one message overhead)
    assert [s.at for s in slots[3:]] == [(1, 0), (2, 0), (2, 1), (3, 0), (4, 0)]
    def counted(block: dict) -> int:
        return count_tokens(json.dumps(block, sort_keys=True, separators=(",", ":")))

    overhead = get_counter().message_overhead("user")  # once, where the first result opens the turn
    assert slots[-2].tokens == overhead + counted(
        {"content": "18C, clear", "tool_use_id": "call_1", "type": "tool_result"})
    assert slots[-1].tokens == counted(
        {"content": "clock unavailable", "is_error": True, "tool_use_id": "call_2", "type": "tool_result"})
    # other tools: another prefix from the first block on
    assert layout(AGENT, long_tools(2, 11))[0].digest != slots[0].digest
    assert layout(AGENT, tools)[-1].digest == slots[-1].digest


def test_client_breakpoint_on_a_tool_is_kept_on_that_tool():
    tools = (WEATHER, Tool("get_time", "t", cache_breakpoint=True))
    body = claude_request(AGENT, OutputSpec(tools=tools))
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == {"type": "ephemeral"}


def test_auto_breakpoint_on_the_last_tool_without_a_system_prompt():
    tools = long_tools()
    messages = (Message.of(Role.USER, "Which tool?"),)
    body = claude_request(messages, OutputSpec(tools=tools), AutoBreakpoints())
    assert [("cache_control" in t) for t in body["tools"]] == [False, False, True]
    # with a system prompt its end is the mark: it covers the tools before it
    with_system = claude_request((Message.of(Role.SYSTEM, "Be brief."), *messages), OutputSpec(tools=tools),
                                 AutoBreakpoints())
    assert not any("cache_control" in t for t in with_system["tools"])
    assert with_system["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_agent_loop_marks_the_turn_before_the_results_and_at_most_four():
    tools = tuple(Tool(t.name, t.description, t.parameters, cache_breakpoint=True) for t in long_tools(3))
    marks = AutoBreakpoints().place(SONNET, AGENT, "t1", tools)
    assert len(marks) <= MAX_BREAKPOINTS
    assert {(TOOLS, 0), (TOOLS, 1), (TOOLS, 2)} <= set(marks)  # the client's own, kept
    assert (2, 1) in marks  # the end of the assistant's calls: the conversation so far
    body = claude_request(AGENT, OutputSpec(tools=tools), AutoBreakpoints())
    sent = [b for t in body["tools"] for b in [t] if "cache_control" in b]
    sent += [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
    sent += [b for b in body.get("system", []) if "cache_control" in b]
    assert len(sent) <= MAX_BREAKPOINTS
    assert body["messages"][1]["content"][1]["cache_control"] == {"type": "ephemeral"}


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of that size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PICTURE = png(1500, 1500)  # scaled to 1.15 megapixels: 1534 tokens, whatever its bytes


def picture_question(question: str) -> tuple[Message, ...]:
    return (Message(Role.USER, (Part(image=Image("image/png", PICTURE)), Part(text=question))),)


def test_an_image_counts_by_its_pixels_toward_the_cached_prefix():
    assert image_tokens(PICTURE) == 1534 and image_tokens(png(100, 75)) == 10
    slots = layout(picture_question("What is this?"))
    assert slots[0].tokens == get_counter().message_overhead("user") + 1534
    marks = AutoBreakpoints().place(SONNET, picture_question("What is this?"), "t1")
    assert (0, 0) in marks  # long shared context before the question
    small = (Message(Role.USER, (Part(image=Image("image/png", png(100, 75))), Part(text="What is this?"))),)
    assert not AutoBreakpoints().place(SONNET, small, "t1")


# -- answers read back (scripted upstream) -------------------------------------------------------


class Upstream:
    """Answers every request with the one scripted response, recording the requests."""

    def __init__(self, response: httpx2.Response):
        self.response = response
        self.bodies: list[dict] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(json.loads(request.content))
        return self.response

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


def sse(events: list) -> httpx2.Response:
    lines = []
    for name, data in events:
        if name:
            lines.append(f"event: {name}")
        lines += [f"data: {data if isinstance(data, str) else json.dumps(data)}", ""]
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content="\n".join(lines).encode())


USAGE = {"input_tokens": 50, "output_tokens": 10}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}


def claude(upstream: Upstream) -> AnthropicAdapter:
    client = anthropic.AsyncAnthropic(api_key="k", base_url="http://up", max_retries=0, http_client=upstream.http())
    return AnthropicAdapter(client, ClientBreakpoints())


def gpt(upstream: Upstream) -> OpenAIAdapter:
    return OpenAIAdapter(openai.AsyncOpenAI(api_key="k", base_url="http://up/v1", max_retries=0,
                                            http_client=upstream.http()))


async def final_of(stream) -> tuple[str, Generation]:
    events = [e async for e in stream]
    assert isinstance(events[-1], Generation) and all(isinstance(e, str) for e in events[:-1])
    return "".join(events[:-1]), events[-1]


async def test_anthropic_reads_tool_use_blocks():
    upstream = Upstream(httpx2.Response(200, json={
        "id": "msg_1", "type": "message", "role": "assistant", "model": SONNET.id, "stop_reason": "tool_use",
        "content": [{"type": "text", "text": "Checking."}, TOOL_USE], "stop_sequence": None, "usage": USAGE}))
    generation = await claude(upstream).generate(SONNET, AGENT[:2], Sampling(), "t1", output=TOOLS_SPEC)
    assert generation.text == "Checking." and generation.finish_reason == "tool_use"
    assert generation.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),)
    assert upstream.bodies[0]["tools"][0]["name"] == "get_weather"


async def test_anthropic_stream_assembles_tool_calls_per_block():
    start = {"type": "message_start", "message": {
        "id": "msg_2", "type": "message", "role": "assistant", "model": SONNET.id, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {**USAGE, "output_tokens": 1}}}
    events = [("message_start", start),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "Checking."}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0})]
    for index, call_id, pieces in ((1, "toolu_1", ['{"ci', 'ty": "Pa', 'ris"}']), (2, "toolu_2", [])):
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": {"type": "input_json_delta", "partial_json": p}})
                   for p in pieces]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                                     "stop_sequence": None},
                                  "usage": {"output_tokens": 10}}),
               ("message_stop", {"type": "message_stop"})]
    text, final = await final_of(claude(Upstream(sse(events))).stream(SONNET, AGENT[:2], Sampling(), "t1",
                                                                      output=TOOLS_SPEC))
    assert text == "Checking." and final.finish_reason == "tool_use"
    assert final.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
                                ToolCall("toolu_2", "get_weather", "{}"))


async def test_anthropic_json_object_answer_gets_its_brace_back():
    upstream = Upstream(httpx2.Response(200, json={
        "id": "msg_3", "type": "message", "role": "assistant", "model": SONNET.id, "stop_reason": "end_turn",
        "content": [{"type": "text", "text": '"answer": 4}'}], "stop_sequence": None, "usage": USAGE}))
    generation = await claude(upstream).generate(SONNET, AGENT[:2], Sampling(), "t1", output=AS_JSON)
    assert json.loads(generation.text) == {"answer": 4}


def openai_chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 0, "model": MINI.id,
            "choices": choices, "usage": usage}


async def test_openai_reads_tool_calls_and_their_finish_reason():
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "get_time", "arguments": '{"city":"Oslo"}'}}]}
    upstream = Upstream(httpx2.Response(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": MINI.id,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}))
    generation = await gpt(upstream).generate(MINI, AGENT[:2], Sampling(), "t1", output=TOOLS_SPEC)
    assert generation.finish_reason == "tool_use" and generation.text == ""
    assert generation.tool_calls == (ToolCall("call_9", "get_time", '{"city":"Oslo"}'),)
    assert openai_adapter.tool_calls_of(message) == generation.tool_calls  # a batch line's dict reads the same


async def test_openai_stream_assembles_tool_calls_by_index():
    def piece(index, arguments, call_id=None, name=None):
        function = {"arguments": arguments} | ({"name": name} if name else {})
        return {"index": index, "function": function} | ({"id": call_id, "type": "function"} if call_id else {})

    chunks = [openai_chunk({"role": "assistant", "content": None}),
              openai_chunk({"tool_calls": [piece(0, "", "call_a", "get_weather")]}),
              openai_chunk({"tool_calls": [piece(0, '{"city":')]}),
              openai_chunk({"tool_calls": [piece(1, "", "call_b", "get_time")]}),
              openai_chunk({"tool_calls": [piece(0, '"Rome"}'), piece(1, '{"city":"Oslo"}')]}),
              openai_chunk({}, "tool_calls"),
              openai_chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60})]
    upstream = Upstream(sse([(None, c) for c in chunks] + [(None, "[DONE]")]))
    text, final = await final_of(gpt(upstream).stream(MINI, AGENT[:2], Sampling(), "t1", output=TOOLS_SPEC))
    assert text == "" and final.finish_reason == "tool_use"
    assert final.tool_calls == (ToolCall("call_a", "get_weather", '{"city":"Rome"}'),
                                ToolCall("call_b", "get_time", '{"city":"Oslo"}'))
    assert upstream.bodies[0]["tools"][1]["function"]["name"] == "get_time"


# -- vLLM, the servicer's model list, batches ----------------------------------------------------


def test_vllm_refuses_tools_and_json_naming_the_field():
    check_servable(AGENT[:2], OutputSpec(), TINY)
    with pytest.raises(InvalidRequest, match=r"^tools:"):
        check_servable(AGENT[:2], TOOLS_SPEC, TINY)
    with pytest.raises(InvalidRequest, match=r"^response_format:"):
        check_servable(AGENT[:2], AS_JSON, TINY)
    with pytest.raises(InvalidRequest, match=r"^messages\[2\]\.tool_calls"):
        check_servable(AGENT, OutputSpec(), TINY)


def test_model_info_lists_capabilities_from_the_catalog():
    info = model_to_pb(SONNET)
    assert (info.tools, info.images, info.json_schema) == (True, True, True)
    info = model_to_pb(TINY)
    assert not (info.tools or info.images or info.json_schema)
    images_only = model_to_pb(ModelSpec("m", "vllm", 0.1, 0.1, capabilities=frozenset({Capability.IMAGES})))
    assert (images_only.tools, images_only.images, images_only.json_schema) == (False, True, False)


def test_batch_payloads_carry_tools_and_formats():
    call = BatchCall("r1", SONNET, AGENT, Sampling(max_tokens=32), "t1", TOOLS_SPEC)
    json_call = BatchCall("r2", SONNET, AGENT[:2], Sampling(max_tokens=32), "t1", AS_JSON)
    requests = AnthropicBatches(client=None, discount=0.5).payload([call, json_call]).body
    params = requests[0]["params"]
    assert [t["name"] for t in params["tools"]] == ["get_weather", "get_time"]
    assert params["messages"][2]["content"][0]["type"] == "tool_result"
    assert requests[1]["params"]["messages"][-1]["role"] == "user"  # no prefill in a batch
    lines = OpenAIBatches(client=None, discount=0.5).payload([
        BatchCall("r1", MINI, AGENT, Sampling(max_tokens=32), "t1", TOOLS_SPEC),
        BatchCall("r2", MINI, AGENT[:2], Sampling(max_tokens=32), "t1", AS_PERSON),
    ]).body.decode().splitlines()
    bodies = [json.loads(line)["body"] for line in lines]
    assert bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    assert bodies[0]["messages"][3]["role"] == "tool"
    assert bodies[1]["response_format"]["type"] == "json_schema"


def test_openai_batch_result_line_reads_tool_calls():
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    line = {"custom_id": "r1", "response": {"status_code": 200, "body": {
        "id": "chatcmpl-b", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}}
    result = OpenAIBatches(client=None, discount=0.5)._line(line, {"r1": MINI})
    assert result.generation.tool_calls == (ToolCall("call_1", "get_weather", "{}"),)
    assert result.generation.finish_reason == "tool_use"


# -- the whole path: router's provider client -> providers service -> SDKs -> simulator -----------


@pytest.fixture(scope="module")
async def providers():
    sim = await start_simulator(port=0, books=[])
    service = await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_SIMULATOR_URL": sim.url}),
                                  port=0)
    channel = grpc.aio.insecure_channel(service.address)
    client = GrpcProviderClient(channel)
    client.stub = provider_pb2_grpc.ProviderServiceStub(channel)  # for what the client does not send
    yield client
    await channel.close()
    await service.stop(0)
    await sim.stop()


MODELS = ["claude-sonnet-4-5", "gpt-5.1"]
QUESTION = (Message.of(Role.USER, "What is the weather in Paris right now?"),)


async def both(client: GrpcProviderClient, call: ProviderCall) -> tuple[Generation, Generation]:
    """The call answered once, and once streamed (its deltas joined into the final's text)."""
    generation = await client.generate(call, timeout_s=20)
    events = [e async for e in client.stream(call, timeout_s=20)]
    final = events[-1]
    assert isinstance(final, Generation) and all(isinstance(e, str) for e in events[:-1])
    final.text = "".join(events[:-1])
    return generation, final


@pytest.mark.parametrize("model", MODELS)
async def test_named_tool_call_then_its_result_through_the_service(providers, model):
    forced = spec(ToolChoice(ChoiceMode.TOOL, "get_weather"), parallel=False)
    for answer in await both(providers, ProviderCall(model, QUESTION, Sampling(max_tokens=200), "t1", forced)):
        assert answer.finish_reason == "tool_use"
        assert [c.name for c in answer.tool_calls] == ["get_weather"]
        call = answer.tool_calls[0]
        assert call.id
        jsonschema.validate(json.loads(call.arguments), dict(WEATHER.parameters))
    conversation = (*QUESTION, Message(Role.ASSISTANT, (), tool_calls=(call,)),
                    Message(Role.TOOL, (Part(text="18C and clear skies"),), tool_call_id=call.id))
    follow_up = ProviderCall(model, conversation, Sampling(max_tokens=200), "t1", TOOLS_SPEC)
    for answer in await both(providers, follow_up):
        assert answer.finish_reason == "stop" and not answer.tool_calls
        assert answer.text


@pytest.mark.parametrize("model", MODELS)
async def test_strict_json_schema_answer_validates_through_the_service(providers, model):
    call = ProviderCall(model, (Message.of(Role.USER, "Invent a person: a name and an age."),),
                        Sampling(max_tokens=200), "t1", AS_PERSON)
    for answer in await both(providers, call):
        jsonschema.validate(json.loads(answer.text), PERSON)
        assert not answer.tool_calls


@pytest.mark.parametrize("question", ["Reply in JSON: what is 2 + 2?", "What is 2 + 2?"])
async def test_openai_json_mode_answer_parses(providers, question):
    call = ProviderCall("gpt-5.1", (Message.of(Role.USER, question),), Sampling(max_tokens=200), "t1", AS_JSON)
    for answer in await both(providers, call):
        assert isinstance(json.loads(answer.text), dict)


async def test_tool_definitions_are_cached_with_the_prefix_on_anthropic():
    sim = await start_simulator(port=0, books=[])
    try:
        client = anthropic.AsyncAnthropic(api_key="tools-cache", base_url=sim.url, max_retries=0)
        adapter = AnthropicAdapter(client, AutoBreakpoints())
        output = OutputSpec(tools=long_tools())
        first = await adapter.generate(SONNET, QUESTION, Sampling(max_tokens=64), "t1", output=output)
        prefix = layout(QUESTION, output.tools)[len(output.tools) - 1].end
        assert first.usage.cache_write_tokens == prefix and first.usage.cache_read_tokens == 0
        again = (Message.of(Role.USER, "And in Rome?"),)
        second = await adapter.generate(SONNET, again, Sampling(max_tokens=64), "t1", output=output)
        assert second.usage.cache_read_tokens == prefix
        await adapter.close()
    finally:
        await sim.stop()


async def test_anthropic_json_mode_answer_parses(providers):
    call = ProviderCall("claude-sonnet-4-5", (Message.of(Role.USER, "What is 2 + 2?"),), Sampling(max_tokens=200),
                        "t1", AS_JSON)
    for answer in await both(providers, call):
        assert isinstance(json.loads(answer.text), dict)


async def test_an_image_is_cached_with_the_prefix_as_the_simulator_bills_it():
    sim = await start_simulator(port=0, books=[])
    try:
        client = anthropic.AsyncAnthropic(api_key="image-cache", base_url=sim.url, max_retries=0)
        adapter = AnthropicAdapter(client, AutoBreakpoints())
        first = await adapter.generate(SONNET, picture_question("What is this?"), Sampling(max_tokens=64), "t1")
        prefix = layout(picture_question("x"))[0].end
        assert first.usage.cache_write_tokens == prefix and first.usage.cache_read_tokens == 0
        second = await adapter.generate(SONNET, picture_question("Which colour?"), Sampling(max_tokens=64), "t1")
        assert second.usage.cache_read_tokens == prefix
        await adapter.close()
    finally:
        await sim.stop()


@pytest.mark.parametrize("model", MODELS)
async def test_an_image_reaches_either_provider_through_the_service(providers, model):
    call = ProviderCall(model, picture_question("What is in this picture?"), Sampling(max_tokens=100), "t1")
    for answer in await both(providers, call):
        assert answer.text and answer.usage.input_tokens > 85  # the image is billed beside the question


@pytest.mark.parametrize("provider, model", [("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-5.1")])
async def test_batch_answers_carry_their_tool_calls(provider, model):
    sim = await start_simulator(port=0, books=[])
    if provider == "anthropic":
        client = anthropic.AsyncAnthropic(api_key="k", base_url=sim.url, max_retries=0)
        registry = BatchRegistry(CATALOG, {provider: AnthropicBatches(client, CATALOG.batch_discount)})
    else:
        client = openai.AsyncOpenAI(api_key="k", base_url=sim.url + "/v1", max_retries=0)
        registry = BatchRegistry(CATALOG, {provider: OpenAIBatches(client, CATALOG.batch_discount)})
    try:
        forced = spec(ToolChoice(ChoiceMode.TOOL, "get_weather"))
        calls = [BatchCall("tool", CATALOG.model(model), QUESTION, Sampling(max_tokens=100), "t1", forced),
                 BatchCall("person", CATALOG.model(model), (Message.of(Role.USER, "Invent a person."),),
                           Sampling(max_tokens=100), "t1", AS_PERSON)]
        submitted = await registry.submit(calls, "tools")
        for _ in range(300):
            if (await registry.state(provider, submitted.batch_id)).ended:
                break
            await asyncio.sleep(0.05)
        results = {r.custom_id: r for r in await registry.results(provider, submitted.batch_id,
                                                                    {"tool": model, "person": model})}
        tool = results["tool"].generation
        assert tool.finish_reason == "tool_use" and [c.name for c in tool.tool_calls] == ["get_weather"]
        jsonschema.validate(json.loads(tool.tool_calls[0].arguments), dict(WEATHER.parameters))
        jsonschema.validate(json.loads(results["person"].generation.text), PERSON)
    finally:
        await client.close()
        await sim.stop()


async def test_bad_tool_input_is_invalid_argument_naming_the_field(providers):
    def request(messages=QUESTION, **fields) -> provider_pb2.GenerateRequest:
        return provider_pb2.GenerateRequest(model="gpt-5.1", messages=messages_to_pb(messages),
                                            sampling=common_pb2.SamplingParams(max_tokens=50), **fields)

    bad_schema = common_pb2.ToolConfig(tools=[common_pb2.Tool(name="f", parameters_json='{"type": 7}')])
    unknown_tool = common_pb2.ToolConfig(
        tools=[common_pb2.Tool(name="f")],
        choice=common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_TOOL, name="g"))
    orphan_result = request((*QUESTION, Message(Role.TOOL, (Part(text="18C"),), tool_call_id="call_x")))
    cases = [(request(tools=bad_schema), "tools.tools[0].parameters_json"),
             (request(tools=unknown_tool), "tool_choice"),
             (orphan_result, "messages[1].tool_call_id")]
    for pb_request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await providers.stub.Generate(pb_request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in raised.value.details()


async def test_list_models_says_what_each_model_can_serve(providers):
    models = {m.id: m for m in (await providers.stub.ListModels(provider_pb2.ListModelsRequest(), timeout=10)).models}
    for model_id in MODELS:
        spec_ = CATALOG.model(model_id)
        info = models[model_id]
        assert (info.tools, info.images, info.json_schema) == tuple(
            c in spec_.capabilities for c in (Capability.TOOLS, Capability.IMAGES, Capability.JSON_SCHEMA))
