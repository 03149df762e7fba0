"""OpenAI tools, tool results and structured output <-> the gateway's protos (no server): the
request's translation, the parameter each error names (the parser's and the pipeline's
validation's), the reply's tool calls, and the stream's chunks as the openai SDK assembles them."""

import json

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from costmesh import errors
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.gateway.http.openai_format import completion_body, param_of, parse_chat_request
from costmesh.gateway.http.openai_stream import ChunkStream
from costmesh.gateway.validation import Limits, validate

CATALOG = load_catalog()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
LOOP = [
    {"role": "system", "content": "Use the tools."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
]


def parse(**body):
    return parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}], **body}, CATALOG)


def checked(**body):
    """Parsed, then through the pipeline's validation, as the gateway runs it."""
    chat = parse(**body)
    chat.request.tenant_id = "t"
    validate(chat.request, Limits())
    return chat


def test_tools_choice_and_a_tool_loop_are_translated():
    r = checked(messages=LOOP, tools=[WEATHER, CLOCK], tool_choice="required", parallel_tool_calls=False).request
    assert [t.name for t in r.tools.tools] == ["get_weather", "get_time"]
    weather = r.tools.tools[0]
    assert weather.description == "The weather in a city." and weather.strict
    assert json.loads(weather.parameters_json) == WEATHER["function"]["parameters"]
    assert r.tools.choice.mode == common.TOOL_CHOICE_MODE_REQUIRED
    assert r.tools.HasField("parallel_tool_calls") and not r.tools.parallel_tool_calls
    roles = [m.role for m in r.messages]
    assert roles == [common.ROLE_SYSTEM, common.ROLE_USER, common.ROLE_ASSISTANT, common.ROLE_TOOL, common.ROLE_TOOL]
    assistant = r.messages[2]
    assert not assistant.content  # content null: the answer only called tools
    assert [(c.id, c.name, c.arguments_json) for c in assistant.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}'), ("call_2", "get_time", "{}")]
    assert r.messages[3].tool_call_id == "call_1" and r.messages[3].content[0].text == "18C, sunny"
    assert r.messages[4].tool_call_id == "call_2" and r.messages[4].content[0].text == "14:05"


@pytest.mark.parametrize(
    ("choice", "mode", "name"),
    [("auto", common.TOOL_CHOICE_MODE_AUTO, ""), ("none", common.TOOL_CHOICE_MODE_NONE, ""),
     ("required", common.TOOL_CHOICE_MODE_REQUIRED, ""),
     ({"type": "function", "function": {"name": "get_time"}}, common.TOOL_CHOICE_MODE_TOOL, "get_time")],
)
def test_tool_choices(choice, mode, name):
    r = checked(tools=[WEATHER, CLOCK], tool_choice=choice).request
    assert r.tools.choice.mode == mode and r.tools.choice.name == name
    assert not r.tools.HasField("parallel_tool_calls")


def test_no_tools_leaves_the_tool_config_unset():
    r = parse(tools=[], response_format={"type": "text"}).request
    assert not r.HasField("tools") and not r.HasField("response_format")


def test_response_formats():
    r = checked(response_format={"type": "json_object"}).request
    assert r.response_format.type == common.RESPONSE_FORMAT_TYPE_JSON_OBJECT
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    r = checked(response_format={"type": "json_schema", "json_schema": {
        "name": "Answer", "schema": schema, "strict": True, "description": "dropped"}}).request
    fmt = r.response_format
    assert fmt.type == common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA and fmt.name == "Answer" and fmt.strict
    assert json.loads(fmt.schema_json) == schema


def test_the_semantic_tool_answers_option():
    assert parse(costmesh={"cache": {"semantic_tool_answers": True}}).request.cache.semantic_tool_answers
    assert not parse().request.cache.semantic_tool_answers


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": {"get_weather": {}}}, "tools"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
         "tools[0].function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools"}}, "tool_choice.type"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
        ({"tools": [WEATHER], "parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
         "response_format.json_schema.name"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format.json_schema.schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}},
         "response_format.json_schema.schema"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]},
         "messages[1].tool_call_id"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]}, "messages[1].content[0].type"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]},
         "messages[0].tool_calls[0].id"),
        ({"messages": [{"role": "assistant", "tool_calls": "call"}]}, "messages[0].tool_calls"),
        ({"messages": [{"role": "assistant", "content": None, "function_call": {"name": "f"}}]},
         "messages[0].function_call"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_bad_tool_requests_name_the_openai_parameter(body, param):
    with pytest.raises(errors.InvalidRequest) as error:
        parse(**body)
    assert param_of(str(error.value)) == param, str(error.value)


BAD_SCHEMA = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 3}}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [CLOCK, BAD_SCHEMA]}, "tools[1].function.parameters"),
        ({"tools": [CLOCK, {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
         "tools[1].function.parameters"),
        ({"tools": [CLOCK, CLOCK]}, "tools[1].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [CLOCK], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}},
         "response_format.json_schema.schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}}},
         "response_format.json_schema.name"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
         "messages[1].tool_call_id"),
        ({"messages": [*LOOP[:3], {"role": "tool", "tool_call_id": "call_1", "content": "a"},
                       {"role": "tool", "tool_call_id": "call_1", "content": "b"}]}, "messages[4].tool_call_id"),
        ({"messages": [*LOOP[:2], {"role": "assistant", "tool_calls": [
            {"id": "same", "function": {"name": "get_time", "arguments": "{}"}},
            {"id": "same", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "same", "content": "x"}]}, "messages[2].tool_calls[1].id"),
        ({"messages": [*LOOP[:2], {"role": "assistant", "tool_calls": [
            {"id": "c1", "function": {"name": "bad name", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "x"}]}, "messages[2].tool_calls[0].function.name"),
    ],
)
def test_the_pipelines_tool_errors_name_the_openai_parameter(body, param):
    with pytest.raises(errors.InvalidRequest) as error:
        checked(**body)
    assert param_of(str(error.value)) == param, str(error.value)


def test_pipeline_tool_field_names_map_to_openai_parameters():
    assert param_of("tools.tools[3].parameters_json: not valid JSON") == "tools[3].function.parameters"
    assert param_of("tools.tools[0].description: too long") == "tools[0].function.description"
    assert param_of("tools.tools: 200 tools, at most 128 allowed") == "tools"
    assert param_of("tools: definitions are over 1000000 bytes") == "tools"
    assert param_of("tools.choice.mode: unknown mode 9") == "tool_choice"
    assert param_of("tools.parallel_tool_calls: x") == "parallel_tool_calls"
    assert param_of("response_format.schema_json: not valid JSON") == "response_format.json_schema.schema"
    assert param_of("response_format.type: unknown type 7") == "response_format.type"
    assert param_of("messages[1].tool_calls[0].arguments: longer than 100000 bytes") == \
        "messages[1].tool_calls[0].function.arguments"
    assert param_of("messages[2].tool_call_id: required on a tool result") == "messages[2].tool_call_id"
    assert param_of("cache.semantic_tool_answers: x") == "costmesh.cache.semantic_tool_answers"


def answer(**fields) -> gw.CompleteResponse:
    base = {"request_id": "r1", "model": "gpt-5-mini", "provider": "openai", "finish_reason": "tool_use",
            "usage": common.TokenUsage(input_tokens=50, output_tokens=12, cache_read_tokens=10),
            "tool_calls": [common.ToolCall(id="call_a", name="get_weather", arguments_json='{"city":"Paris"}'),
                           common.ToolCall(id="call_b", name="get_time", arguments_json="{}")]}
    return gw.CompleteResponse(**{**base, **fields})


def test_an_answer_that_calls_tools():
    body = completion_body(parse(tools=[WEATHER, CLOCK]), answer(), created=1)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.tool_calls[0].function.name == "get_weather"
    text = completion_body(parse(), answer(text="Checking.", tool_calls=[answer().tool_calls[0]]), created=1)
    assert text["choices"][0]["message"]["content"] == "Checking."
    plain = completion_body(parse(), answer(text="Hi.", tool_calls=[], finish_reason="stop"), created=1)
    assert "tool_calls" not in plain["choices"][0]["message"] and plain["choices"][0]["finish_reason"] == "stop"


def stream_chunks(events, **body):
    chat = parse(stream=True, stream_options={"include_usage": True}, **body)
    stream = ChunkStream(chat, "r1", created=1)
    return [c for event in events for c in stream.chunks(event)]


def test_streamed_tool_calls_are_chunks_the_openai_sdk_assembles():
    final = answer()
    events = [gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(
        index=i, id=c.id, name=c.name, arguments_delta=c.arguments_json)) for i, c in enumerate(final.tool_calls)]
    chunks = stream_chunks([*events, gw.StreamCompleteResponse(final=final)], tools=[WEATHER, CLOCK])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[1]["choices"][0]["delta"] == {"tool_calls": [{
        "index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather",
                                                                     "arguments": '{"city":"Paris"}'}}]}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls" and "costmesh" in chunks[-2]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 50
    state = ChatCompletionStreamState(input_tools=[WEATHER, CLOCK])
    for data in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(data))
    message = state.get_final_completion().choices[0].message
    assert message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'), ("call_b", "get_time", "{}")]
    assert message.tool_calls[0].function.parsed_arguments == {"city": "Paris"}  # strict tool: parsed


def test_pieces_of_a_call_and_calls_only_in_the_final_event():
    final = answer()
    pieces = [
        gw.StreamCompleteResponse(text_delta="Let me check. "),
        gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(index=0, id="call_a", name="get_weather",
                                                                       arguments_delta='{"ci')),
        gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(index=0, arguments_delta='ty":"Paris"}')),
        gw.StreamCompleteResponse(final=final),  # call_b only here
    ]
    chunks = stream_chunks(pieces)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[3]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}
    state = ChatCompletionStreamState()
    for data in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(data))
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Let me check. " and completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", '{"city":"Paris"}'), ("call_b", "{}")]
