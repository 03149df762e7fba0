"""Anthropic Messages `tools`, `tool_choice` and `output_config.format` (structured outputs), checked
with errors worded like the real API's and turned into the model's `ToolSpec`s, `ToolChoice` and
`OutputFormat`. Server tools (web search, code execution, ...) are accepted and never called."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from costmesh.services.simulator.errors import invalid
from costmesh.services.simulator.model_turn import OutputFormat, ToolChoice, ToolSpec
from costmesh.services.simulator.schema_checks import SchemaChecker, anthropic_strict_problem

NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
CHOICES = ("auto", "any", "tool", "none")
INVALID_SCHEMA = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12). "
    "Learn more about tool use at https://docs.claude.com/en/docs/tool-use."
)


def parse_tools(tools: Any, checker: SchemaChecker) -> tuple[ToolSpec, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise invalid(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool: Anthropic runs it, the simulator never calls it
        specs.append(_custom_tool(i, tool, checker))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise invalid("tools: Tool names must be unique.")
    return tuple(specs)


def _custom_tool(i: int, tool: Mapping[str, Any], checker: SchemaChecker) -> ToolSpec:
    at = f"tools.{i}.custom"
    name = tool.get("name")
    if name is None:
        raise invalid(f"{at}.name: Field required")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    description = tool.get("description", "")
    if not isinstance(description, str):
        raise invalid(f"{at}.description: Input should be a valid string")
    strict = tool.get("strict", False)
    if not isinstance(strict, bool):
        raise invalid(f"{at}.strict: Input should be a valid boolean")
    schema = tool.get("input_schema")
    if schema is None:
        raise invalid(f"{at}.input_schema: Field required")
    if not isinstance(schema, Mapping):
        raise invalid(f"{at}.input_schema: Input should be a valid dictionary")
    if schema.get("type") != "object":
        raise invalid(f"{at}.input_schema.type: Input should be 'object'")
    if checker.problem(schema) is not None:
        raise invalid(f"{at}.input_schema: {INVALID_SCHEMA}")
    problem = anthropic_strict_problem(schema) if strict else None
    if problem:
        raise invalid(f"{at}.input_schema: {problem}")
    return ToolSpec(name, description, schema, strict)


def parse_tool_choice(choice: Any, tools: tuple[ToolSpec, ...], any_tools: bool) -> ToolChoice:
    if choice is None:
        return ToolChoice("auto")
    if not isinstance(choice, Mapping):
        raise invalid("tool_choice: Input should be a valid dictionary or object to extract fields from")
    kind = choice.get("type")
    if kind not in CHOICES:
        raise invalid(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    parallel = choice.get("disable_parallel_tool_use", False)
    if not isinstance(parallel, bool):
        raise invalid(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")
    if kind in ("any", "tool") and not any_tools:
        raise invalid(f"tool_choice: tool_choice.type '{kind}' requires tools to be provided")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.tool.name: Field required")
        if not any(tool.name == name for tool in tools):
            raise invalid(f"tool_choice.tool.name: Tool '{name}' not found in tools")
        return ToolChoice("named", name, not parallel)
    mode = {"auto": "auto", "any": "required", "none": "none"}[kind]
    return ToolChoice(mode, None, not parallel)


def parse_output_format(body: Mapping[str, Any], checker: SchemaChecker) -> OutputFormat:
    """`output_config.format` (or the beta's top-level `output_format`): a JSON schema the answer follows."""
    config = body.get("output_config")
    where = "output_config.format"
    if config is not None and not isinstance(config, Mapping):
        raise invalid("output_config: Input should be a valid dictionary")
    spec = config.get("format") if isinstance(config, Mapping) else None
    if spec is None and body.get("output_format") is not None:
        spec, where = body["output_format"], "output_format"
    if spec is None:
        return OutputFormat()
    if not isinstance(spec, Mapping):
        raise invalid(f"{where}: Input should be a valid dictionary")
    if spec.get("type") != "json_schema":
        raise invalid(
            f"{where}: Input tag '{spec.get('type')}' found using 'type' does not match any of the expected tags: "
            "'json_schema'"
        )
    schema = spec.get("schema")
    if schema is None:
        raise invalid(f"{where}.schema: Field required")
    if not isinstance(schema, Mapping):
        raise invalid(f"{where}.schema: Input should be a valid dictionary")
    if checker.problem(schema) is not None:
        raise invalid(f"{where}.schema: {INVALID_SCHEMA}")
    problem = anthropic_strict_problem(schema)
    if problem:
        raise invalid(f"{where}.schema: {problem}")
    return OutputFormat("json_schema", schema, strict=True)
