"""OpenAI Chat Completions' tools and structured output <-> the protos: `tools`, `tool_choice`
and `response_format` as pydantic models, each with the proto it becomes; the tool calls of an
answer as the openai SDK's types (whole, or as the deltas a stream carries). An earlier answer's
`tool_calls`: `openai_messages.ToolCall`.

Only function tools; the legacy `functions`/`function_call` stay refused (`openai_models`).
A tool's `parameters` and a `json_schema`'s `schema` travel serialised; the pipeline checks
them against their metaschema (`costmesh.output_spec`) and its errors name the proto fields,
which `PIPELINE_FIELDS` turns back into the OpenAI parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union

from openai.types.chat import ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall, ChoiceDeltaToolCallFunction
from openai.types.chat.chat_completion_message_function_tool_call import Function
from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.gateway.http.json_body import schema_json, short
from costmesh.gateway.http.request_model import TAG, Strict, fail, fail_at, says

CHOICES = {"auto": common.TOOL_CHOICE_MODE_AUTO, "none": common.TOOL_CHOICE_MODE_NONE,
           "required": common.TOOL_CHOICE_MODE_REQUIRED}
FORMATS = ("text", "json_object", "json_schema")

# The pipeline's field names for tools and formats -> the OpenAI parameter (full match on the
# field; the first rule that matches wins).
_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]
PIPELINE_FIELDS: tuple[_Rule, ...] = (
    (re.compile(r"tools\.tools\[(\d+)\]\.parameters(?:_json)?"), lambda m: f"tools[{m[1]}].function.parameters"),
    (re.compile(r"tools\.tools\[(\d+)\]\.(name|description|strict)"), lambda m: f"tools[{m[1]}].function.{m[2]}"),
    (re.compile(r"tools\.tools\[(\d+)\]"), lambda m: f"tools[{m[1]}]"),
    (re.compile(r"tools(?:\.tools)?"), lambda m: "tools"),
    (re.compile(r"tools\.choice(?:\..+)?|tool_choice"), lambda m: "tool_choice"),
    (re.compile(r"tools\.parallel_tool_calls"), lambda m: "parallel_tool_calls"),
    (re.compile(r"response_format\.schema(?:_json)?"), lambda m: "response_format.json_schema.schema"),
    (re.compile(r"response_format\.(name|strict)"), lambda m: f"response_format.json_schema.{m[1]}"),
    (re.compile(r"(messages\[\d+\]\.tool_calls\[\d+\])\.(name|arguments)(?:_json)?"),
     lambda m: f"{m[1]}.function.{m[2]}"),
)


def pipeline_field(head: str) -> str | None:
    """The OpenAI parameter of a tools/format field the pipeline named, or None if not one."""
    for pattern, name in PIPELINE_FIELDS:
        match = pattern.fullmatch(head)
        if match:
            return name(match)
    return None


# -- requests ------------------------------------------------------------------------------

Schema = Annotated[dict[str, Any], says("a JSON Schema must be an object")]


def _function(kind: Any) -> Any:
    if kind != "function":
        fail(f"{short(kind)} is not supported; use function")
    return kind


FunctionType = Annotated[Any, AfterValidator(_function)]  # `type`: function, the one kind served


class FunctionDef(Strict):
    name: str
    description: str | None = None
    parameters: Schema | None = None
    strict: bool | None = None


class Tool(Strict):
    type: FunctionType
    function: FunctionDef

    def to_proto(self) -> common.Tool:
        function = self.function
        tool = common.Tool(name=function.name)
        if function.description is not None:
            tool.description = function.description
        if function.parameters is not None:
            tool.parameters_json = schema_json(function.parameters)
        if function.strict is not None:
            tool.strict = function.strict
        return tool


def _mode(mode: str) -> str:
    if mode not in CHOICES:
        fail(f"{short(mode)} is not supported; use auto, none, required "
             "or {'type': 'function', 'function': {'name': ...}}")
    return mode


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: FunctionType
    function: NamedFunction


ToolChoice = Annotated[
    Union[Annotated[Annotated[str, AfterValidator(_mode)], Tag(TAG + "mode")],
          Annotated[NamedToolChoice, Tag(TAG + "function")]],
    Discriminator(lambda choice: TAG + ("mode" if isinstance(choice, str) else "function")),
]


def tool_config(tools: list[Tool] | None, choice: str | NamedToolChoice | None,
                parallel: bool | None) -> common.ToolConfig | None:
    """`tools`, `tool_choice` and `parallel_tool_calls`; None when the body has none of them."""
    if not tools and choice is None and parallel is None:
        return None
    config = common.ToolConfig(tools=[tool.to_proto() for tool in tools or ()])
    if isinstance(choice, str):
        config.choice.CopyFrom(common.ToolChoice(mode=CHOICES[choice]))
    elif choice is not None:
        config.choice.CopyFrom(common.ToolChoice(mode=common.TOOL_CHOICE_MODE_TOOL, name=choice.function.name))
    if parallel is not None:
        config.parallel_tool_calls = parallel
    return config


class TextFormat(Strict):
    """Free text: as if unset (whatever else it holds)."""

    def to_proto(self) -> None:
        return None


class JsonObjectFormat(Strict):
    def to_proto(self) -> common.ResponseFormat:
        return common.ResponseFormat(type=common.RESPONSE_FORMAT_TYPE_JSON_OBJECT)


class JsonSchemaSpec(Strict):
    name: str
    schema_: Schema = Field(alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(Strict):
    json_schema: JsonSchemaSpec

    def to_proto(self) -> common.ResponseFormat:
        spec = self.json_schema
        out = common.ResponseFormat(type=common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name=spec.name,
                                    schema_json=schema_json(spec.schema_))
        if spec.strict is not None:
            out.strict = spec.strict
        return out


def _check_format(value: Any) -> Any:
    if value == {}:
        return None
    if isinstance(value, Mapping):
        if "type" not in value:
            fail_at("type", "required", value)
        kind = value["type"]
        if not isinstance(kind, str) or kind not in FORMATS:
            fail_at("type", f"{short(kind)} is not supported; use text, json_object or json_schema", value)
    return value


ResponseFormat = Annotated[
    Annotated[Union[Annotated[TextFormat, Tag(TAG + "text")], Annotated[JsonObjectFormat, Tag(TAG + "json_object")],
                    Annotated[JsonSchemaFormat, Tag(TAG + "json_schema")]],
              Discriminator(lambda value: TAG + (value["type"] if isinstance(value, Mapping) else "text"))] | None,
    BeforeValidator(_check_format),
]  # `{}` as if unset


# -- replies ---------------------------------------------------------------------------------


def tool_calls_out(calls: Any) -> list[ChatCompletionMessageFunctionToolCall]:
    """An answer's tool calls as `message.tool_calls`."""
    return [ChatCompletionMessageFunctionToolCall(
        id=call.id, type="function", function=Function(name=call.name, arguments=call.arguments_json))
        for call in calls]


def tool_call_delta_out(delta: common.ToolCallDelta) -> ChoiceDeltaToolCall:
    """One piece of a streamed call as `delta.tool_calls[]`: the first piece of a call (the one
    with its id) carries id, type and name, as OpenAI's own first piece does."""
    if delta.id:
        function = ChoiceDeltaToolCallFunction(name=delta.name, arguments=delta.arguments_delta)
        return ChoiceDeltaToolCall(index=delta.index, id=delta.id, type="function", function=function)
    return ChoiceDeltaToolCall(index=delta.index, function=ChoiceDeltaToolCallFunction(arguments=delta.arguments_delta))
