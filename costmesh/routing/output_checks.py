"""Does an answer give what the request asked for? The cascade's structural checks.

Before the quality gate reads an answer's prose, these check its shape against the request's
`OutputSpec`: tool calls only to offered tools, with arguments that parse and validate
against the tool's parameters (the `jsonschema` library), a call where one is required and
none where tools are off, one call where parallel calls are off; JSON that parses and
validates against the asked schema. Each problem is a reason name (a failed gate, so the
cascade upgrades); an empty list means the shape is right.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import validators

from costmesh.domain import Generation
from costmesh.output_spec import ChoiceMode, FormatType, OutputSpec

# Reasons, each a hard failure of the gate.
UNKNOWN_TOOL = "unknown_tool"
TOOL_ARGUMENTS_NOT_JSON = "tool_arguments_not_json"
TOOL_ARGUMENTS_INVALID = "tool_arguments_invalid"
TOOL_CALL_MISSING = "tool_call_missing"
TOOL_CALL_FORBIDDEN = "tool_call_forbidden"
TOOL_CALL_WRONG_TOOL = "tool_call_wrong_tool"
TOO_MANY_TOOL_CALLS = "too_many_tool_calls"
JSON_NOT_PARSED = "json_not_parsed"
JSON_NOT_OBJECT = "json_not_object"
JSON_SCHEMA_INVALID = "json_schema_invalid"
OUTPUT_FAILURES = frozenset({
    UNKNOWN_TOOL, TOOL_ARGUMENTS_NOT_JSON, TOOL_ARGUMENTS_INVALID, TOOL_CALL_MISSING, TOOL_CALL_FORBIDDEN,
    TOOL_CALL_WRONG_TOOL, TOO_MANY_TOOL_CALLS, JSON_NOT_PARSED, JSON_NOT_OBJECT, JSON_SCHEMA_INVALID,
})


def output_problems(answer: Generation, spec: OutputSpec) -> list[str]:
    """What is wrong with the answer's shape, in the order found; [] when nothing is."""
    if spec.plain and not answer.tool_calls:
        return []
    problems: list[str] = []
    calls = answer.tool_calls
    mode = spec.choice.mode
    if calls and not spec.may_call_tools:
        problems.append(TOOL_CALL_FORBIDDEN)
    elif not calls and spec.tools and mode in (ChoiceMode.REQUIRED, ChoiceMode.TOOL):
        problems.append(TOOL_CALL_MISSING)
    if len(calls) > 1 and spec.parallel_tool_calls is False:
        problems.append(TOO_MANY_TOOL_CALLS)
    for call in calls:
        tool = spec.tool(call.name)
        if tool is None:
            problems.append(UNKNOWN_TOOL)
            continue
        if mode == ChoiceMode.TOOL and call.name != spec.choice.name:
            problems.append(TOOL_CALL_WRONG_TOOL)
        arguments = _parse(call.arguments or "{}")
        if arguments is _INVALID or not isinstance(arguments, dict):
            problems.append(TOOL_ARGUMENTS_NOT_JSON)
        elif not _valid(arguments, tool.parameters):
            problems.append(TOOL_ARGUMENTS_INVALID)
    fmt = spec.response_format
    if fmt.is_json and not calls:
        value = _parse(answer.text)
        if value is _INVALID:
            problems.append(JSON_NOT_PARSED)
        elif fmt.type == FormatType.JSON_OBJECT and not isinstance(value, dict):
            problems.append(JSON_NOT_OBJECT)
        elif fmt.type == FormatType.JSON_SCHEMA and fmt.schema is not None and not _valid(value, fmt.schema):
            problems.append(JSON_SCHEMA_INVALID)
    return list(dict.fromkeys(problems))


_INVALID = object()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _INVALID


def _valid(value: Any, schema: Mapping[str, Any]) -> bool:
    validator = validators.validator_for(schema)(schema)
    return next(iter(validator.iter_errors(value)), None) is None
