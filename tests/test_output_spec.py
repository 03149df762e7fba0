"""Tools and structured output in the core: the checks at the edge, the digest the cache scopes
by, the capabilities a request needs, and the shape checks the cascade's gate runs."""

from __future__ import annotations

import json

import pytest

from costmesh.api.common.v1 import common_pb2 as pb
from costmesh.convert import message_from_pb, message_to_pb, output_spec_from_pb, output_spec_to_pb
from costmesh.domain import Generation, Image, Message, Part, Role, ToolCall
from costmesh.errors import InvalidRequest
from costmesh.output_spec import (
    Capability,
    ChoiceMode,
    FormatType,
    OutputSpec,
    ResponseFormat,
    Tool,
    ToolChoice,
    check_conversation,
    required_capabilities,
)
from costmesh.routing import output_checks as checks

CALC_SCHEMA = {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}
LOOKUP_SCHEMA = {"type": "object", "properties": {"term": {"type": "string"}, "limit": {"type": "integer"}},
                 "required": ["term"], "additionalProperties": False}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "number"}, "unit": {"type": "string"}},
                 "required": ["answer"]}
TOOLS = (Tool("calculator", "Evaluates arithmetic", CALC_SCHEMA), Tool("lookup", "Looks a term up", LOOKUP_SCHEMA))


def config(*tools: pb.Tool, mode=pb.TOOL_CHOICE_MODE_AUTO, name="") -> pb.ToolConfig:
    return pb.ToolConfig(tools=list(tools), choice=pb.ToolChoice(mode=mode, name=name))


def tool_pb(name="calculator", schema=CALC_SCHEMA) -> pb.Tool:
    return pb.Tool(name=name, description="d", parameters_json=json.dumps(schema))


def answer(text="", *calls: ToolCall, finish="stop") -> Generation:
    return Generation(text, "gpt-5-mini", "openai", finish_reason=finish, tool_calls=tuple(calls))


# -- the edge: every rejection names the field ---------------------------------------------


def test_tools_and_format_round_trip_through_protobuf():
    spec = OutputSpec(TOOLS, ToolChoice(ChoiceMode.TOOL, "lookup"), False,
                      ResponseFormat(FormatType.JSON_SCHEMA, "answer", ANSWER_SCHEMA, True))
    tools, fmt = output_spec_to_pb(spec)
    assert output_spec_from_pb(tools, fmt) == spec


@pytest.mark.parametrize("tools, fmt, field", [
    (config(pb.Tool(name="calc", parameters_json="{not json")), pb.ResponseFormat(), "tools.tools[0].parameters_json"),
    (config(pb.Tool(name="calc", parameters_json='{"type": 5}')), pb.ResponseFormat(),
     "tools.tools[0].parameters_json"),
    (config(pb.Tool(name="calc", parameters_json='[1, 2]')), pb.ResponseFormat(), "tools.tools[0].parameters_json"),
    (config(tool_pb(schema={"type": "string"})), pb.ResponseFormat(), "tools.tools[0].parameters"),
    (config(tool_pb(name="has space")), pb.ResponseFormat(), "tools.tools[0].name"),
    (config(tool_pb(), tool_pb()), pb.ResponseFormat(), "tools.tools[1].name"),
    (config(tool_pb(), mode=pb.TOOL_CHOICE_MODE_TOOL, name="nope"), pb.ResponseFormat(), "tool_choice"),
    (config(mode=pb.TOOL_CHOICE_MODE_REQUIRED), pb.ResponseFormat(), "tool_choice"),
    (pb.ToolConfig(), pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA), "response_format"),
    (pb.ToolConfig(), pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, schema_json='{"type": "nope"}'),
     "response_format.schema_json"),
    (pb.ToolConfig(), pb.ResponseFormat(type=99), "response_format.type"),
])
def test_malformed_tools_and_formats_are_refused_naming_the_field(tools, fmt, field):
    with pytest.raises(InvalidRequest) as caught:
        output_spec_from_pb(tools, fmt)
    assert str(caught.value).startswith(field + ":")


def test_a_schema_nested_beyond_the_bound_is_refused_before_it_is_read():
    deep: dict = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(InvalidRequest, match="nested deeper"):
        output_spec_from_pb(config(tool_pb(schema=deep)), pb.ResponseFormat())


CALL = ToolCall("call_1", "calculator", '{"expression": "2+2"}')


def conversation(*extra: Message) -> list[Message]:
    return [Message.of(Role.USER, "What is 2+2?"), Message(Role.ASSISTANT, (), (CALL,)), *extra]


def test_a_tool_result_must_answer_an_earlier_call_once():
    result = Message(Role.TOOL, (Part(text="4"),), tool_call_id="call_1")
    check_conversation(conversation(result))
    with pytest.raises(InvalidRequest, match=r"^messages\[2\]\.tool_call_id: answers no tool call"):
        check_conversation(conversation(Message(Role.TOOL, (Part(text="4"),), tool_call_id="call_9")))
    with pytest.raises(InvalidRequest, match=r"^messages\[3\]\.tool_call_id: .*already answered"):
        check_conversation(conversation(result, result))
    with pytest.raises(InvalidRequest, match=r"^messages\[0\]\.tool_call_id: answers no tool call"):
        check_conversation([Message(Role.TOOL, (Part(text="4"),), tool_call_id="call_1")])


def test_only_assistant_messages_call_tools_and_call_ids_are_unique_and_printable():
    with pytest.raises(InvalidRequest, match=r"^messages\[0\]\.tool_calls: only assistant"):
        check_conversation([Message(Role.USER, (Part(text="hi"),), (CALL,))])
    with pytest.raises(InvalidRequest, match=r"^messages\[2\]\.tool_calls\[0\]\.id: another tool call"):
        check_conversation(conversation(Message(Role.ASSISTANT, (), (CALL,))))
    with pytest.raises(InvalidRequest, match=r"^messages\[1\]\.tool_calls\[0\]\.id: at most"):
        check_conversation([Message.of(Role.USER, "q"), Message(Role.ASSISTANT, (), (ToolCall("a b", "calculator"),))])


def test_tool_fields_round_trip_through_protobuf_messages():
    message = Message(Role.ASSISTANT, (Part(text="Let me compute."),), (CALL,))
    assert message_from_pb(message_to_pb(message)) == message
    result = Message(Role.TOOL, (Part(text="boom"),), tool_call_id="call_1", is_error=True)
    assert message_from_pb(message_to_pb(result)) == result


# -- the cache scope and the router's capabilities -------------------------------------------


def test_the_digest_is_equal_for_equal_specs_and_differs_for_any_difference():
    spec = OutputSpec(TOOLS)
    assert OutputSpec().digest() == ""
    assert spec.digest() == OutputSpec(tuple(TOOLS)).digest()
    assert spec.digest() != OutputSpec(TOOLS[:1]).digest()
    assert spec.digest() != OutputSpec(TOOLS, ToolChoice(ChoiceMode.REQUIRED)).digest()
    assert spec.digest() != OutputSpec(TOOLS, parallel_tool_calls=False).digest()
    assert OutputSpec(response_format=ResponseFormat(FormatType.JSON_OBJECT)).digest() != ""


def test_required_capabilities_follow_the_request():
    image = Message(Role.USER, (Part(text="what is this?"), Part(image=Image("image/png", b"\x89PNG"))))
    assert required_capabilities(OutputSpec(), [Message.of(Role.USER, "hi")]) == frozenset()
    assert required_capabilities(OutputSpec(TOOLS), [image]) == {Capability.TOOLS, Capability.IMAGES}
    assert required_capabilities(OutputSpec(), conversation()) == {Capability.TOOLS}  # tools in the history
    json_schema = OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "a", ANSWER_SCHEMA))
    assert required_capabilities(json_schema, [Message.of(Role.USER, "hi")]) == {Capability.JSON_SCHEMA}


# -- the gate's shape checks -------------------------------------------------------------------


@pytest.mark.parametrize("spec, generation, problems", [
    (OutputSpec(TOOLS), answer("", CALL, finish="tool_use"), []),
    (OutputSpec(TOOLS), answer("Four."), []),
    (OutputSpec(TOOLS), answer("", ToolCall("c", "calculater", "{}")), [checks.UNKNOWN_TOOL]),
    (OutputSpec(TOOLS), answer("", ToolCall("c", "calculator", '{"expression": 4}')), [checks.TOOL_ARGUMENTS_INVALID]),
    (OutputSpec(TOOLS), answer("", ToolCall("c", "calculator", "{}")), [checks.TOOL_ARGUMENTS_INVALID]),
    (OutputSpec(TOOLS), answer("", ToolCall("c", "lookup", '{"term": "x", "extra": 1}')),
     [checks.TOOL_ARGUMENTS_INVALID]),
    (OutputSpec(TOOLS), answer("", ToolCall("c", "calculator", '{"expression": ')), [checks.TOOL_ARGUMENTS_NOT_JSON]),
    (OutputSpec(TOOLS, ToolChoice(ChoiceMode.REQUIRED)), answer("Four."), [checks.TOOL_CALL_MISSING]),
    (OutputSpec(TOOLS, ToolChoice(ChoiceMode.NONE)), answer("", CALL), [checks.TOOL_CALL_FORBIDDEN]),
    (OutputSpec(), answer("", CALL), [checks.TOOL_CALL_FORBIDDEN, checks.UNKNOWN_TOOL]),
    (OutputSpec(TOOLS, ToolChoice(ChoiceMode.TOOL, "lookup")), answer("", CALL), [checks.TOOL_CALL_WRONG_TOOL]),
    (OutputSpec(TOOLS, parallel_tool_calls=False),
     answer("", CALL, ToolCall("call_2", "calculator", '{"expression": "1"}')), [checks.TOO_MANY_TOOL_CALLS]),
    (OutputSpec(response_format=ResponseFormat(FormatType.JSON_OBJECT)), answer('{"a": 1}'), []),
    (OutputSpec(response_format=ResponseFormat(FormatType.JSON_OBJECT)), answer("Sure! {"), [checks.JSON_NOT_PARSED]),
    (OutputSpec(response_format=ResponseFormat(FormatType.JSON_OBJECT)), answer("[1]"), [checks.JSON_NOT_OBJECT]),
    (OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "a", ANSWER_SCHEMA)),
     answer('{"answer": 4, "unit": "apples"}'), []),
    (OutputSpec(response_format=ResponseFormat(FormatType.JSON_SCHEMA, "a", ANSWER_SCHEMA)),
     answer('{"unit": "apples"}'), [checks.JSON_SCHEMA_INVALID]),
])
def test_output_problems(spec, generation, problems):
    assert checks.output_problems(generation, spec) == problems
