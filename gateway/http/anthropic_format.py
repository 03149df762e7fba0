"""Anthropic Messages API request JSON -> the gateway's protobuf request.

No HTTP here. Every rejection is an `InvalidRequest` whose message starts with the Anthropic
parameter at fault, spelled as Anthropic spells it (`messages.1.content.0.tool_use_id`,
`tools.2.input_schema`, `max_tokens`). The pipeline's own errors name the proto's fields;
`MessagesRequest.rename` turns them back into the Anthropic parameter, through the origin of
every proto message and part (a user message's `tool_result` blocks become one TOOL message
each, before a USER message of its other blocks, so the indices differ).

Mapping: `system` (a string or text blocks) -> a SYSTEM message; `cache_control` on a block ->
`ContentPart.cache_breakpoint`, on a tool -> `Tool.cache_breakpoint`, at the top level -> on the
last part of the last message; `tool_use` blocks -> the assistant message's `tool_calls`
(`input` serialised); `tools[].input_schema` -> `parameters_json`; `tool_choice` auto / any /
none / tool -> AUTO / REQUIRED / NONE / TOOL, `disable_parallel_tool_use: true` ->
`parallel_tool_calls: false`; `output_config.format` (or the beta's `output_format`) json_schema
-> a strict JSON schema response format; `stop_sequences` -> `sampling.stop`. costmesh's
options travel in the body's `costmesh` object, as on `/v1/chat/completions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog
from costmesh.errors import InvalidRequest
from costmesh.gateway.http.costmesh_options import apply_options, route_model
from costmesh.gateway.http.json_body import (
    INT32_MAX,
    b64decode,
    boolean,
    check_json,
    get,
    integer,
    key_name,
    mapping,
    number,
    schema_text,
    short,
    string,
)

# Accepted and used, or accepted without effect (documented in the README).
KNOWN = frozenset({
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "metadata", "service_tier", "output_config", "output_format", "cache_control",
    "thinking", "costmesh", "inference_geo", "speed", "user_profile_id", "workspace_id", "diagnostics",
    "container", "mcp_servers", "context_management",
})
UNSUPPORTED = ("container", "mcp_servers", "context_management")
CHOICES = {"auto": common.TOOL_CHOICE_MODE_AUTO, "any": common.TOOL_CHOICE_MODE_REQUIRED,
           "none": common.TOOL_CHOICE_MODE_NONE, "tool": common.TOOL_CHOICE_MODE_TOOL}
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


@dataclass
class Origin:
    """Where one proto message came from in the Anthropic body."""

    message: str  # "system" or "messages.3"
    parts: list[str] = field(default_factory=list)  # each content part's block
    calls: list[str] = field(default_factory=list)  # each tool call's tool_use block
    result: str = ""  # the tool_result block of a TOOL message


@dataclass
class MessagesRequest:
    """A parsed Messages request: the pipeline's request, what the reply echoes, and where each
    proto message came from (to name the Anthropic parameter in the pipeline's errors)."""

    request: gw.CompleteRequest
    model: str
    stream: bool
    origins: list[Origin] = field(default_factory=list)

    def rename(self, message: str) -> str:
        """An error message of the pipeline, its field (before ': ') named as Anthropic names it."""
        head, sep, rest = message.partition(": ")
        if not sep or " " in head:
            return message
        named = anthropic_field(head, self.origins)
        return f"{named}: {rest}" if named else rest


def parse_messages_request(body: Any, catalog: Catalog) -> MessagesRequest:
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: expected a JSON object")
    check_json(body, dotted=True)
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        name = key_name(unknown[0])
        raise InvalidRequest(f"{name if name != '?' else 'body'}: Extra inputs are not permitted")
    for name in UNSUPPORTED:
        if body.get(name) not in (None, [], {}):
            raise InvalidRequest(f"{name}: not supported by costmesh")
    thinking = body.get("thinking")
    if thinking is not None and get(thinking, "type", "thinking") != "disabled":
        raise InvalidRequest("thinking: extended thinking is not supported by costmesh; omit it or disable it")

    request = gw.CompleteRequest()
    model = route_model(body.get("model"), catalog, request)
    if "max_tokens" not in body:
        raise InvalidRequest("max_tokens: Field required")
    request.sampling.max_tokens = integer(body["max_tokens"], "max_tokens", 1, INT32_MAX, "must be a positive integer")
    origins: list[Origin] = []
    _system(body.get("system"), request, origins)
    _messages(body.get("messages"), request, origins)
    if body.get("cache_control") is not None:  # automatic caching: a breakpoint on the last block
        _cache_control(body["cache_control"], "cache_control")
        last = request.messages[-1]
        if last.content:
            last.content[-1].cache_breakpoint = True
    _sampling(body, request.sampling)
    _tools(body, request)
    _output_format(body, request)
    if body.get("metadata") is not None:
        mapping(body["metadata"], "metadata")
    apply_options(body.get("costmesh"), request)
    stream = boolean(body.get("stream", False), "stream")
    return MessagesRequest(request, model, stream, origins)


# -- messages ----------------------------------------------------------------------------------


def _system(raw: Any, request: gw.CompleteRequest, origins: list[Origin]) -> None:
    if raw is None or raw == "" or raw == []:
        return
    message = common.Message(role=common.ROLE_SYSTEM)
    origin = Origin("system")
    if isinstance(raw, str):
        message.content.add(text=raw)
        origin.parts.append("system")
    elif isinstance(raw, list):
        for j, block in enumerate(raw):
            where = f"system.{j}"
            kind = get(block, "type", where)
            if kind != "text":
                raise InvalidRequest(f"{where}.type: {short(kind)} is not supported; use text")
            _text(block, message, where)
            origin.parts.append(where)
    else:
        raise InvalidRequest("system: expected a string or an array of text blocks")
    request.messages.append(message)
    origins.append(origin)


def _messages(raw: Any, request: gw.CompleteRequest, origins: list[Origin]) -> None:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: a non-empty array of messages is required")
    for i, item in enumerate(raw):
        where = f"messages.{i}"
        role = get(item, "role", where)
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: {short(role)} is not supported; use user or assistant")
        content = get(item, "content", where)
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}]
            paths = [f"{where}.content"]
        elif isinstance(content, list):
            blocks = content
            paths = [f"{where}.content.{j}" for j in range(len(content))]
        else:
            raise InvalidRequest(f"{where}.content: expected a string or an array of content blocks")
        if role == "assistant":
            _assistant(blocks, paths, where, request, origins)
        else:
            _user(blocks, paths, where, request, origins)


def _assistant(blocks: list[Any], paths: list[str], where: str, request: gw.CompleteRequest,
               origins: list[Origin]) -> None:
    message = common.Message(role=common.ROLE_ASSISTANT)
    origin = Origin(where)
    for block, at in zip(blocks, paths, strict=True):
        kind = get(block, "type", at)
        if kind == "text":
            _text(block, message, at)
            origin.parts.append(at)
        elif kind == "tool_use":
            message.tool_calls.append(common.ToolCall(
                id=string(get(block, "id", at), f"{at}.id"),
                name=string(get(block, "name", at), f"{at}.name"),
                arguments_json=_input(get(block, "input", at), f"{at}.input"),
            ))
            origin.calls.append(at)
        else:
            raise InvalidRequest(f"{at}.type: {short(kind)} is not supported in an assistant message; "
                                 "use text or tool_use")
    request.messages.append(message)
    origins.append(origin)


def _user(blocks: list[Any], paths: list[str], where: str, request: gw.CompleteRequest,
          origins: list[Origin]) -> None:
    """tool_result blocks first, one TOOL message each, in order; then the other blocks as one
    USER message (none when there are no other blocks)."""
    message = common.Message(role=common.ROLE_USER)
    origin = Origin(where)
    for block, at in zip(blocks, paths, strict=True):
        kind = get(block, "type", at)
        if kind == "text":
            _text(block, message, at)
            origin.parts.append(at)
        elif kind == "image":
            _image(block, message, at)
            origin.parts.append(at)
        elif kind == "tool_result":
            request.messages.append(_tool_result(block, at, origins))
        else:
            raise InvalidRequest(f"{at}.type: {short(kind)} is not supported; use text, image or tool_result")
    if message.content or not blocks:  # an empty one too: validation names it
        request.messages.append(message)
        origins.append(origin)


def _tool_result(block: Mapping, at: str, origins: list[Origin]) -> common.Message:
    message = common.Message(role=common.ROLE_TOOL,
                             tool_call_id=string(get(block, "tool_use_id", at), f"{at}.tool_use_id"))
    origin = Origin(at, result=at)
    if block.get("is_error") is not None:
        message.is_error = boolean(block["is_error"], f"{at}.is_error")
    content = block.get("content")
    if isinstance(content, str):
        if content:
            message.content.add(text=content)
            origin.parts.append(f"{at}.content")
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            where = f"{at}.content.{k}"
            kind = get(inner, "type", where)
            if kind == "text":
                _text(inner, message, where)
            elif kind == "image":
                _image(inner, message, where)
            else:
                raise InvalidRequest(f"{where}.type: {short(kind)} is not supported in a tool result; "
                                     "use text or image")
            origin.parts.append(where)
    elif content is not None:
        raise InvalidRequest(f"{at}.content: expected a string or an array of text and image blocks")
    if block.get("cache_control") is not None and message.content:
        _cache_control(block["cache_control"], f"{at}.cache_control")
        message.content[-1].cache_breakpoint = True
    origins.append(origin)
    return message


def _text(block: Mapping, message: common.Message, at: str) -> None:
    part = message.content.add(text=string(get(block, "text", at), f"{at}.text"))
    if block.get("cache_control") is not None:
        _cache_control(block["cache_control"], f"{at}.cache_control")
        part.cache_breakpoint = True


def _image(block: Mapping, message: common.Message, at: str) -> None:
    source = get(block, "source", at)
    kind = get(source, "type", f"{at}.source")
    if kind == "base64":
        media_type = string(get(source, "media_type", f"{at}.source"), f"{at}.source.media_type")
        if media_type not in MEDIA_TYPES:
            raise InvalidRequest(f"{at}.source.media_type: one of {', '.join(MEDIA_TYPES)}")
        data = b64decode(string(get(source, "data", f"{at}.source"), f"{at}.source.data"), f"{at}.source.data")
        image = common.Image(media_type=media_type, data=data)
    elif kind == "url":
        image = common.Image(url=string(get(source, "url", f"{at}.source"), f"{at}.source.url"))
    else:
        raise InvalidRequest(f"{at}.source.type: {short(kind)} is not supported; use base64 or url")
    part = message.content.add(image=image)
    if block.get("cache_control") is not None:
        _cache_control(block["cache_control"], f"{at}.cache_control")
        part.cache_breakpoint = True


def _input(value: Any, where: str) -> str:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}: expected an object")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cache_control(value: Any, where: str) -> None:
    kind = get(value, "type", where)
    if kind != "ephemeral":
        raise InvalidRequest(f"{where}.type: {short(kind)} is not supported; use ephemeral")


# -- sampling, tools, output format --------------------------------------------------------------


def _sampling(body: Mapping, sampling: common.SamplingParams) -> None:
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            setattr(sampling, key, number(body[key], key))
    if body.get("top_k") is not None:  # accepted without effect: no provider API of the mesh takes it
        integer(body["top_k"], "top_k", 0, INT32_MAX, "must be a non-negative integer")
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences: expected an array of strings")
        sampling.stop.extend(stop)


def _tools(body: Mapping, request: gw.CompleteRequest) -> None:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools in (None, []) and choice is None:
        return
    config = request.tools
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: expected an array of tools")
        for i, raw in enumerate(tools):
            config.tools.append(_tool(raw, f"tools.{i}"))
    if choice is not None:
        kind = get(choice, "type", "tool_choice")
        if not isinstance(kind, str) or kind not in CHOICES:
            raise InvalidRequest(f"tool_choice.type: {short(kind)} is not supported; use auto, any, none or tool")
        config.choice.mode = CHOICES[kind]
        if kind == "tool":
            config.choice.name = string(get(choice, "name", "tool_choice"), "tool_choice.name")
        disable = choice.get("disable_parallel_tool_use")
        if disable is not None and boolean(disable, "tool_choice.disable_parallel_tool_use"):
            config.parallel_tool_calls = False


def _tool(raw: Any, where: str) -> common.Tool:
    kind = mapping(raw, where).get("type")
    if kind not in (None, "custom"):
        raise InvalidRequest(f"{where}.type: {short(kind)} is not supported; costmesh serves custom (client) tools")
    tool = common.Tool(name=string(get(raw, "name", where), f"{where}.name"),
                       parameters_json=schema_text(get(raw, "input_schema", where), f"{where}.input_schema"))
    if raw.get("description") is not None:
        tool.description = string(raw["description"], f"{where}.description")
    if raw.get("strict") is not None:
        tool.strict = boolean(raw["strict"], f"{where}.strict")
    if raw.get("cache_control") is not None:
        _cache_control(raw["cache_control"], f"{where}.cache_control")
        tool.cache_breakpoint = True
    return tool


def _output_format(body: Mapping, request: gw.CompleteRequest) -> None:
    """`output_config.format` (or the beta's top-level `output_format`): a JSON schema the
    answer's text follows; Anthropic's structured outputs are always strict."""
    where, raw = "output_format", body.get("output_format")
    config = body.get("output_config")
    if config is not None and mapping(config, "output_config").get("format") is not None:
        where, raw = "output_config.format", config["format"]
    if raw is None:
        return
    kind = get(raw, "type", where)
    if kind != "json_schema":
        raise InvalidRequest(f"{where}.type: {short(kind)} is not supported; use json_schema")
    request.response_format.CopyFrom(common.ResponseFormat(
        type=common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, strict=True,
        schema_json=schema_text(get(raw, "schema", where), f"{where}.schema")))


# -- the pipeline's field names -> Anthropic's ---------------------------------------------------

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]
_FIELDS: tuple[_Rule, ...] = (
    (re.compile(r"tools\.tools\[(\d+)\]\.parameters(?:_json)?"), lambda m: f"tools.{m[1]}.input_schema"),
    (re.compile(r"tools\.tools\[(\d+)\]\.(name|description|strict)"), lambda m: f"tools.{m[1]}.{m[2]}"),
    (re.compile(r"tools\.tools\[(\d+)\]"), lambda m: f"tools.{m[1]}"),
    (re.compile(r"tools(?:\.tools)?"), lambda m: "tools"),
    (re.compile(r"tools\.choice(?:\..+)?|tool_choice"), lambda m: "tool_choice"),
    (re.compile(r"tools\.parallel_tool_calls"), lambda m: "tool_choice.disable_parallel_tool_use"),
    (re.compile(r"response_format\.schema(?:_json)?"), lambda m: "output_config.format.schema"),
    (re.compile(r"response_format(?:\..+)?"), lambda m: "output_config.format"),
    (re.compile(r"sampling\.max_tokens"), lambda m: "max_tokens"),
    (re.compile(r"sampling\.(temperature|top_p)"), lambda m: m[1]),
    (re.compile(r"sampling\.stop\[(\d+)\]"), lambda m: f"stop_sequences.{m[1]}"),
    (re.compile(r"sampling\.stop"), lambda m: "stop_sequences"),
    (re.compile(r"(cache|routing|session_id|request_id)((?:\.|\[).*)?"),
     lambda m: "costmesh." + m[1] + (m[2] or "").replace("[", ".").replace("]", "")),
    (re.compile(r"tenant_id"), lambda m: None),
)
_MESSAGE = re.compile(r"messages\[(\d+)\](.*)")
_PART = re.compile(r"\.content\[(\d+)\](.*)")
_CALL = re.compile(r"\.tool_calls\[(\d+)\](.*)")
_IMAGE = {".image": ".source", ".image.url": ".source.url", ".image.data": ".source.data",
          ".image.media_type": ".source.media_type"}
_CALL_FIELDS = {"": "", ".id": ".id", ".name": ".name", ".arguments": ".input", ".arguments_json": ".input"}


def anthropic_field(head: str, origins: list[Origin]) -> str | None:
    """The Anthropic parameter of a field the pipeline named (None: nothing the caller sent)."""
    match = _MESSAGE.fullmatch(head)
    if match:
        i, tail = int(match[1]), match[2]
        return _message_field(origins[i], tail) if i < len(origins) else "messages"
    if head == "routing.model":
        return "model"
    for pattern, name in _FIELDS:
        found = pattern.fullmatch(head)
        if found:
            return name(found)
    return head


def _message_field(origin: Origin, tail: str) -> str:
    block = origin.result or origin.message
    if tail in ("", ".content"):
        return block if block == "system" else block + tail
    if tail == ".role":
        return origin.message + ".role"
    if tail == ".tool_call_id":
        return f"{origin.result}.tool_use_id" if origin.result else origin.message
    if tail == ".tool_calls":
        return origin.message + ".content"
    part = _PART.fullmatch(tail)
    if part and int(part[1]) < len(origin.parts):
        return origin.parts[int(part[1])] + _IMAGE.get(part[2], part[2])
    call = _CALL.fullmatch(tail)
    if call and int(call[1]) < len(origin.calls):
        return origin.calls[int(call[1])] + _CALL_FIELDS.get(call[2], call[2])
    return block
