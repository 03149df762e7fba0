"""OpenAI Chat Completions `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`,
checked with errors worded like the real API's and turned into the model's `ToolSpec`s,
`ToolChoice` and `OutputFormat`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from costmesh.services.simulator.errors import invalid
from costmesh.services.simulator.model_turn import OutputFormat, ToolChoice, ToolSpec
from costmesh.services.simulator.schema_checks import SchemaChecker, object_root_problem, openai_strict_problem

MAX_TOOLS = 128
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
CHOICES = ("none", "auto", "required")


def parse_tools(body: Mapping[str, Any], checker: SchemaChecker) -> tuple[ToolSpec, ...]:
    """The function tools offered (custom tools are accepted and never called)."""
    tools = body.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    if len(tools) > MAX_TOOLS:
        raise invalid(
            f"Invalid 'tools': array too long. Expected an array with maximum length {MAX_TOOLS}, but got an array "
            f"with length {len(tools)} instead.",
            "tools",
            "array_above_max_length",
        )
    specs = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise invalid(f"Invalid type for '{at}': expected an object.", at, "invalid_type")
        kind = tool.get("type")
        if kind is None:
            raise invalid(f"Missing required parameter: '{at}.type'.", f"{at}.type", "missing_required_parameter")
        if kind == "custom":
            continue
        if kind != "function":
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'.",
                f"{at}.type",
                "invalid_value",
            )
        specs.append(_function(at, tool.get("function"), checker))
    return tuple(specs)


def _function(at: str, function: Any, checker: SchemaChecker) -> ToolSpec:
    if not isinstance(function, Mapping):
        if function is None:
            raise invalid(
                f"Missing required parameter: '{at}.function'.", f"{at}.function", "missing_required_parameter"
            )
        raise invalid(f"Invalid type for '{at}.function': expected an object.", f"{at}.function", "invalid_type")
    name = function.get("name")
    where = f"{at}.function.name"
    if name is None:
        raise invalid(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid(
            f"Invalid '{where}': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$'.",
            where,
            "invalid_value",
        )
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise invalid(
            f"Invalid type for '{at}.function.description': expected a string.",
            f"{at}.function.description",
            "invalid_type",
        )
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(
            f"Invalid type for '{at}.function.strict': expected a boolean.", f"{at}.function.strict", "invalid_type"
        )
    parameters = function.get("parameters", {})
    where = f"{at}.function.parameters"
    if not isinstance(parameters, Mapping):
        raise invalid(
            f"Invalid type for '{where}': expected an object, but got {_kind(parameters)} instead.",
            where,
            "invalid_type",
        )
    problem = _schema_problem(parameters, checker, bool(strict))
    if problem:
        raise invalid(f"Invalid schema for function '{name}': {problem}", where, "invalid_function_parameters")
    return ToolSpec(name, description, parameters, bool(strict))


def parse_tool_choice(body: Mapping[str, Any], tools: tuple[ToolSpec, ...]) -> tuple[ToolChoice, tuple[ToolSpec, ...]]:
    """The choice, and the tools it leaves callable (`allowed_tools` narrows them)."""
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if "tools" not in body or body.get("tools") is None:
        for name, value in (("tool_choice", choice), ("parallel_tool_calls", parallel)):
            if value is not None:
                raise invalid(f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.", name)
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid(
            "Invalid type for 'parallel_tool_calls': expected a boolean.", "parallel_tool_calls", "invalid_type"
        )
    allow_parallel = parallel is not False
    if choice is None:
        return ToolChoice("auto", None, allow_parallel), tools
    if isinstance(choice, str):
        if choice not in CHOICES:
            raise invalid(
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                "tool_choice",
                "invalid_value",
            )
        return ToolChoice(choice, None, allow_parallel), tools
    if not isinstance(choice, Mapping):
        raise invalid(
            "Invalid type for 'tool_choice': expected one of a string or an object.", "tool_choice", "invalid_type"
        )
    if choice.get("type") == "allowed_tools":
        return _allowed_tools(choice.get("allowed_tools"), tools, allow_parallel)
    if choice.get("type") != "function":
        raise invalid(
            f"Invalid value: '{choice.get('type')}'. Supported values are: 'function', 'allowed_tools' and 'custom'.",
            "tool_choice.type",
            "invalid_value",
        )
    function = choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise invalid(
            "Missing required parameter: 'tool_choice.function.name'.",
            "tool_choice.function.name",
            "missing_required_parameter",
        )
    if not any(tool.name == name for tool in tools):
        raise invalid(
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.", "tool_choice", "invalid_value"
        )
    return ToolChoice("named", name, allow_parallel), tools


def _allowed_tools(
    allowed: Any, tools: tuple[ToolSpec, ...], parallel: bool
) -> tuple[ToolChoice, tuple[ToolSpec, ...]]:
    if not isinstance(allowed, Mapping) or allowed.get("mode") not in ("auto", "required"):
        raise invalid(
            "Invalid value for 'tool_choice.allowed_tools.mode': supported values are 'auto' and 'required'.",
            "tool_choice.allowed_tools.mode",
            "invalid_value",
        )
    entries = allowed.get("tools")
    if not isinstance(entries, list):
        raise invalid(
            "Missing required parameter: 'tool_choice.allowed_tools.tools'.",
            "tool_choice.allowed_tools.tools",
            "missing_required_parameter",
        )
    names = set()
    for entry in entries:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return ToolChoice(allowed["mode"], None, parallel), tuple(t for t in tools if t.name in names)


def parse_response_format(body: Mapping[str, Any], checker: SchemaChecker, mentions_json: bool) -> OutputFormat:
    spec = body.get("response_format")
    if spec is None:
        return OutputFormat()
    if not isinstance(spec, Mapping):
        raise invalid("Invalid type for 'response_format': expected an object.", "response_format", "invalid_type")
    kind = spec.get("type")
    if kind == "text":
        return OutputFormat()
    if kind == "json_object":
        if not mentions_json:
            raise invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "messages",
            )
        return OutputFormat("json_object")
    if kind != "json_schema":
        raise invalid(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    schema_spec = spec.get("json_schema")
    if not isinstance(schema_spec, Mapping):
        raise invalid(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    name = schema_spec.get("name")
    where = "response_format.json_schema.name"
    if name is None:
        raise invalid(f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid(
            f"Invalid '{where}': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$'.",
            where,
            "invalid_value",
        )
    strict = schema_spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(
            "Invalid type for 'response_format.json_schema.strict': expected a boolean.",
            "response_format.json_schema.strict",
            "invalid_type",
        )
    schema = schema_spec.get("schema", {})
    if not isinstance(schema, Mapping):
        raise invalid(
            f"Invalid type for 'response_format.json_schema.schema': expected an object, but got {_kind(schema)} "
            "instead.",
            "response_format.json_schema.schema",
            "invalid_type",
        )
    problem = _schema_problem(schema, checker, bool(strict), require_object=bool(strict))
    if problem:
        raise invalid(
            f"Invalid schema for response_format '{name}': {problem}", "response_format", "invalid_json_schema"
        )
    return OutputFormat("json_schema", schema, bool(strict))


def _schema_problem(
    schema: Mapping[str, Any], checker: SchemaChecker, strict: bool, *, require_object: bool = True
) -> str | None:
    found = checker.problem(schema)
    if found is not None:
        message, path = found
        return f"In context={path!r}, {message}."
    if require_object:
        problem = object_root_problem(schema)
        if problem:
            return problem
    return openai_strict_problem(schema) if strict else None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "null"
