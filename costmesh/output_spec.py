"""What a request asks of its answer's shape: the tools it offers and the response format.

Domain types (no protobuf), the checks every entry point runs on them (each rejection names
the field at fault, as `costmesh.errors.InvalidRequest`), the capabilities a model needs to
serve them, and the digest the cache scopes answers by (an answer is shared only between
requests offering the same tools and asking the same format).

JSON Schemas are checked with the `jsonschema` library against their own metaschema, after
a bound on size and nesting (a schema is model input, and is also run by the gate).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from costmesh.domain import Message, Role
from costmesh.errors import InvalidRequest

TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS = 128
MAX_SCHEMA_BYTES = 100_000  # one tool's parameters, or the response format's schema, serialised
MAX_SCHEMA_DEPTH = 24
MAX_DESCRIPTION_BYTES = 10_000
MAX_TOOL_CALLS = 128  # in one assistant message
MAX_ARGUMENTS_BYTES = 100_000  # one tool call's arguments
MAX_CALL_ID_CHARS = 256
_CALL_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces


class ChoiceMode(enum.StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"  # the tool named in ToolChoice.name


class FormatType(enum.StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


class Capability(enum.StrEnum):
    """What a model must support to serve a request (the catalog lists each model's)."""

    TOOLS = "tools"
    IMAGES = "images"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False
    cache_breakpoint: bool = False  # the client's own prompt-cache breakpoint after this tool


@dataclass(frozen=True)
class ToolChoice:
    mode: ChoiceMode = ChoiceMode.AUTO
    name: str = ""  # ChoiceMode.TOOL only


@dataclass(frozen=True)
class ResponseFormat:
    type: FormatType = FormatType.TEXT
    name: str = ""
    schema: Mapping[str, Any] | None = None  # JSON_SCHEMA only
    strict: bool = False

    @property
    def is_json(self) -> bool:
        return self.type != FormatType.TEXT


@dataclass(frozen=True)
class OutputSpec:
    """The tools offered (and how they may be used) and the format asked for."""

    tools: tuple[Tool, ...] = ()
    choice: ToolChoice = ToolChoice()
    parallel_tool_calls: bool | None = None  # None: the provider's default (parallel allowed)
    response_format: ResponseFormat = ResponseFormat()

    @property
    def plain(self) -> bool:
        """No tools and free text: nothing to check, nothing to scope by."""
        return not self.tools and not self.response_format.is_json

    @property
    def may_call_tools(self) -> bool:
        return bool(self.tools) and self.choice.mode != ChoiceMode.NONE

    def tool(self, name: str) -> Tool | None:
        for tool in self.tools:
            if tool.name == name:
                return tool
        return None

    def digest(self) -> str:
        """A digest of everything here (sorted keys, so equal specs always agree); "" when plain."""
        if self.plain:
            return ""
        fmt = self.response_format
        canonical = {
            "tools": [[t.name, t.description, t.parameters, t.strict] for t in self.tools],
            "choice": [self.choice.mode.value, self.choice.name],
            "parallel": self.parallel_tool_calls,
            "format": [fmt.type.value, fmt.name, fmt.schema, fmt.strict],
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def required_capabilities(spec: OutputSpec, messages: Sequence[Message]) -> frozenset[Capability]:
    """What a model needs to answer: tools when offered or already in the conversation, images
    when a message holds one, native JSON schema output when one is asked for."""
    needs = set()
    if spec.tools or any(m.tool_calls or m.role == Role.TOOL for m in messages):
        needs.add(Capability.TOOLS)
    if any(part.image is not None for m in messages for part in m.parts):
        needs.add(Capability.IMAGES)
    if spec.response_format.type == FormatType.JSON_SCHEMA:
        needs.add(Capability.JSON_SCHEMA)
    return frozenset(needs)


# -- checks ----------------------------------------------------------------------------------


def parse_schema(text: str, where: str) -> dict[str, Any]:
    """A serialised JSON Schema, parsed and checked against its metaschema."""
    if len(text) > MAX_SCHEMA_BYTES or len(text.encode()) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"{where}: longer than {MAX_SCHEMA_BYTES} bytes")
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRequest(f"{where}: not valid JSON") from None
    check_schema(schema, where)
    return schema


def check_schema(schema: Any, where: str) -> None:
    """`schema` is a bounded JSON Schema object that its own metaschema accepts."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}: a JSON Schema must be an object")
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise InvalidRequest(f"{where}: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    # Imported here: the catalog imports this module, and the Python client (costmesh[client]) the
    # catalog, without jsonschema.
    from jsonschema import exceptions as schema_errors
    from jsonschema import validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        at = "/".join(str(p) for p in exc.path)
        raise InvalidRequest(f"{where}: not a valid JSON Schema ({exc.validator} at /{at})") from None


def check_tools(spec: OutputSpec, where: str = "tools") -> None:
    """Names unique and well-formed, each schema an object schema, the choice naming a tool."""
    if len(spec.tools) > MAX_TOOLS:
        raise InvalidRequest(f"{where}: {len(spec.tools)} tools, at most {MAX_TOOLS} allowed")
    seen: set[str] = set()
    for i, tool in enumerate(spec.tools):
        if not TOOL_NAME.fullmatch(tool.name):
            raise InvalidRequest(f"{where}[{i}].name: 1 to 64 letters, digits, '_' or '-'")
        if tool.name in seen:
            raise InvalidRequest(f"{where}[{i}].name: another tool has the same name")
        seen.add(tool.name)
        if len(tool.description.encode()) > MAX_DESCRIPTION_BYTES:
            raise InvalidRequest(f"{where}[{i}].description: longer than {MAX_DESCRIPTION_BYTES} bytes")
        if tool.parameters.get("type", "object") != "object":
            raise InvalidRequest(f"{where}[{i}].parameters: the schema of a tool's arguments must be of type object")
    mode, name = spec.choice.mode, spec.choice.name
    if mode in (ChoiceMode.REQUIRED, ChoiceMode.TOOL) and not spec.tools:
        raise InvalidRequest(f"tool_choice: {mode.value} needs tools")
    if mode == ChoiceMode.TOOL and name not in seen:
        raise InvalidRequest("tool_choice: names no tool of the request")
    if mode != ChoiceMode.TOOL and name:
        raise InvalidRequest("tool_choice: a name is only taken with a named tool choice")
    fmt = spec.response_format
    if fmt.type == FormatType.JSON_SCHEMA:
        if fmt.schema is None:
            raise InvalidRequest("response_format: a JSON schema response format needs a schema")
        if fmt.name and not TOOL_NAME.fullmatch(fmt.name):
            raise InvalidRequest("response_format.name: 1 to 64 letters, digits, '_' or '-'")
    elif fmt.schema is not None or fmt.name:
        raise InvalidRequest("response_format: a schema is only taken with the JSON schema type")


def check_conversation(messages: Sequence[Message]) -> None:
    """Tool calls and their results agree: every TOOL message answers a call of an earlier
    assistant message, once; call ids are unique; only assistant messages call tools."""
    open_calls: set[str] = set()
    all_ids: set[str] = set()
    for i, message in enumerate(messages):
        if message.tool_calls and message.role != Role.ASSISTANT:
            raise InvalidRequest(f"messages[{i}].tool_calls: only assistant messages call tools")
        if len(message.tool_calls) > MAX_TOOL_CALLS:
            raise InvalidRequest(f"messages[{i}].tool_calls: at most {MAX_TOOL_CALLS} calls")
        for j, call in enumerate(message.tool_calls):
            where = f"messages[{i}].tool_calls[{j}]"
            _check_call_id(call.id, f"{where}.id")
            if call.id in all_ids:
                raise InvalidRequest(f"{where}.id: another tool call has the same id")
            all_ids.add(call.id)
            open_calls.add(call.id)
            if not TOOL_NAME.fullmatch(call.name):
                raise InvalidRequest(f"{where}.name: 1 to 64 letters, digits, '_' or '-'")
            if len(call.arguments.encode()) > MAX_ARGUMENTS_BYTES:
                raise InvalidRequest(f"{where}.arguments: longer than {MAX_ARGUMENTS_BYTES} bytes")
        if message.role == Role.TOOL:
            if not message.tool_call_id:
                raise InvalidRequest(f"messages[{i}].tool_call_id: required on a tool result")
            if message.tool_call_id not in open_calls:
                raise InvalidRequest(
                    f"messages[{i}].tool_call_id: answers no tool call of an earlier assistant message"
                    + (" (already answered)" if message.tool_call_id in all_ids else "")
                )
            open_calls.discard(message.tool_call_id)
        elif message.tool_call_id or message.is_error:
            raise InvalidRequest(f"messages[{i}].tool_call_id: only tool results answer a call")


def _check_call_id(call_id: str, where: str) -> None:
    if not call_id:
        raise InvalidRequest(f"{where}: required")
    if len(call_id) > MAX_CALL_ID_CHARS or not _CALL_ID.fullmatch(call_id):
        raise InvalidRequest(f"{where}: at most {MAX_CALL_ID_CHARS} printable ASCII characters, no spaces")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_SCHEMA_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
