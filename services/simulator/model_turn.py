"""What the simulated model is asked on a turn and what it answers, in neither API's format.

The request parsers of both APIs build a `Turn`; the model (`model_reply`) answers it with
a `Reply`; each API writes the reply in its own shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: its name, description and the JSON schema of its arguments."""

    name: str
    description: str
    schema: Mapping[str, Any]
    strict: bool = False  # the API constrains the arguments to the schema


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # "auto" | "none" | "required" (any tool) | "named"
    name: str | None = None  # the tool when mode is "named"
    parallel: bool = True  # more than one call per answer allowed


@dataclass(frozen=True)
class OutputFormat:
    kind: str = "text"  # "text" | "json_object" | "json_schema"
    schema: Mapping[str, Any] | None = None
    strict: bool = False  # the API constrains the output to the schema


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned to one of the model's calls."""

    name: str  # the tool that was called ("" when the call is not in the conversation)
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Turn:
    prompt: str  # the last user message's text: what the answer is about
    tools: tuple[ToolSpec, ...] = ()
    choice: ToolChoice = field(default_factory=ToolChoice)
    output: OutputFormat = field(default_factory=OutputFormat)
    results: tuple[ToolResult, ...] = ()  # not empty: the conversation ends with these (then any prefill)
    # Anthropic: the text of a final assistant turn, the start of the answer the reply continues
    prefill: str = ""

    def tool(self, name: str) -> ToolSpec | None:
        return next((tool for tool in self.tools if tool.name == name), None)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (it may not parse)

    def input(self) -> dict[str, Any]:
        """The arguments as an object (Anthropic's `input`); {} when they do not parse to one."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Reply:
    text: str  # "" with tool calls and no preamble
    tool_calls: tuple[ToolCall, ...] = ()
