"""OpenAI Chat Completions' tools and structured output <-> the protos: `tools`,
`tool_choice`, `parallel_tool_calls`, `response_format`, an assistant message's `tool_calls`,
and the tool calls of an answer (whole, or as the deltas a stream carries).

Only function tools; the legacy `functions`/`function_call` stay refused (`openai_format`).
A tool's `parameters` and a `json_schema`'s `schema` travel serialised; the pipeline checks
them against their metaschema (`costmesh.output_spec`) and its errors name the proto fields,
which `PIPELINE_FIELDS` turns back into the OpenAI parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.errors import InvalidRequest
from costmesh.gateway.http.json_body import boolean, get, mapping, schema_text, short, string

CHOICES = {"auto": common.TOOL_CHOICE_MODE_AUTO, "none": common.TOOL_CHOICE_MODE_NONE,
           "required": common.TOOL_CHOICE_MODE_REQUIRED}
FORMATS = {"text": common.RESPONSE_FORMAT_TYPE_TEXT, "json_object": common.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
           "json_schema": common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA}

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


def tool_config(body: Mapping) -> common.ToolConfig | None:
    """`tools`, `tool_choice` and `parallel_tool_calls`; None when the body has none of them."""
    tools, choice, parallel = body.get("tools"), body.get("tool_choice"), body.get("parallel_tool_calls")
    if tools in (None, []) and choice is None and parallel is None:
        return None
    config = common.ToolConfig()
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: expected an array of tools")
        config.tools.extend(_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools))
    if choice is not None:
        config.choice.CopyFrom(_choice(choice))
    if parallel is not None:
        config.parallel_tool_calls = boolean(parallel, "parallel_tool_calls")
    return config


def _tool(raw: Any, where: str) -> common.Tool:
    kind = get(raw, "type", where)
    if kind != "function":
        raise InvalidRequest(f"{where}.type: {short(kind)} is not supported; use function")
    function = mapping(get(raw, "function", where), f"{where}.function")
    tool = common.Tool(name=string(get(function, "name", f"{where}.function"), f"{where}.function.name"))
    if function.get("description") is not None:
        tool.description = string(function["description"], f"{where}.function.description")
    if function.get("parameters") is not None:
        tool.parameters_json = schema_text(function["parameters"], f"{where}.function.parameters")
    if function.get("strict") is not None:
        tool.strict = boolean(function["strict"], f"{where}.function.strict")
    return tool


def _choice(raw: Any) -> common.ToolChoice:
    if isinstance(raw, str):
        if raw not in CHOICES:
            raise InvalidRequest(f"tool_choice: {short(raw)} is not supported; use auto, none, required "
                                 "or {'type': 'function', 'function': {'name': ...}}")
        return common.ToolChoice(mode=CHOICES[raw])
    kind = get(raw, "type", "tool_choice")
    if kind != "function":
        raise InvalidRequest(f"tool_choice.type: {short(kind)} is not supported; use function")
    function = mapping(get(raw, "function", "tool_choice"), "tool_choice.function")
    name = string(get(function, "name", "tool_choice.function"), "tool_choice.function.name")
    return common.ToolChoice(mode=common.TOOL_CHOICE_MODE_TOOL, name=name)


def response_format(raw: Any) -> common.ResponseFormat | None:
    """`response_format`: text, json_object or json_schema {name, schema, strict}."""
    if raw is None or raw == {}:
        return None
    kind = get(raw, "type", "response_format")
    if not isinstance(kind, str) or kind not in FORMATS:
        raise InvalidRequest(f"response_format.type: {short(kind)} is not supported; "
                             "use text, json_object or json_schema")
    if kind == "text":  # as if unset
        return None
    out = common.ResponseFormat(type=FORMATS[kind])
    if kind == "json_schema":
        spec = mapping(get(raw, "json_schema", "response_format"), "response_format.json_schema")
        out.name = string(get(spec, "name", "response_format.json_schema"), "response_format.json_schema.name")
        out.schema_json = schema_text(get(spec, "schema", "response_format.json_schema"),
                                      "response_format.json_schema.schema")
        if spec.get("strict") is not None:
            out.strict = boolean(spec["strict"], "response_format.json_schema.strict")
    return out


def assistant_tool_calls(raw: Any, where: str) -> list[common.ToolCall]:
    """An assistant message's `tool_calls`: [{id, type: function, function: {name, arguments}}]."""
    if not isinstance(raw, list):
        raise InvalidRequest(f"{where}: expected an array of tool calls")
    calls = []
    for j, item in enumerate(raw):
        at = f"{where}[{j}]"
        kind = mapping(item, at).get("type") or "function"
        if kind != "function":
            raise InvalidRequest(f"{at}.type: {short(kind)} is not supported; use function")
        function = mapping(get(item, "function", at), f"{at}.function")
        calls.append(common.ToolCall(
            id=string(get(item, "id", at), f"{at}.id"),
            name=string(get(function, "name", f"{at}.function"), f"{at}.function.name"),
            arguments_json=string(get(function, "arguments", f"{at}.function"), f"{at}.function.arguments"),
        ))
    return calls


# -- replies ---------------------------------------------------------------------------------


def tool_calls_json(calls: Any) -> list[dict[str, Any]]:
    """An answer's tool calls as `message.tool_calls`."""
    return [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
            for call in calls]


def tool_call_delta_json(delta: common.ToolCallDelta) -> dict[str, Any]:
    """One piece of a streamed call as `delta.tool_calls[]`: the first piece of a call (the one
    with its id) carries id, type and name, as OpenAI's own first piece does."""
    if delta.id:
        return {"index": delta.index, "id": delta.id, "type": "function",
                "function": {"name": delta.name, "arguments": delta.arguments_delta}}
    return {"index": delta.index, "function": {"arguments": delta.arguments_delta}}
