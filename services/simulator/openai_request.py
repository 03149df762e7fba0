"""OpenAI Chat Completions request: validation (errors worded like the real API) and the prompt tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator.errors import invalid
from costmesh.services.simulator.model_turn import Turn
from costmesh.services.simulator.openai_messages import ImagePart, check_messages
from costmesh.services.simulator.openai_tools import parse_response_format, parse_tool_choice, parse_tools
from costmesh.services.simulator.schema_checks import SchemaChecker

MAX_STOP = 4


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    stop: tuple[str, ...]
    prompt_cache_key: str
    retention_24h: bool
    prompt_text: str  # the last user message's text
    turn: Turn  # what the model is asked: tools, tool choice, output format, tool results
    images: Mapping[tuple[int, int], ImagePart]  # by (message index, content part index)
    output_schema: Mapping[str, Any] | None  # response_format's schema (part of the prompt)


def parse_chat_request(body: Mapping[str, Any], checker: SchemaChecker) -> ChatRequest:
    """Validate a /v1/chat/completions body; raises ApiError(400)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise invalid("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    checked = check_messages(messages)
    max_tokens = _max_tokens(body)
    temperature = body.get("temperature")
    if temperature is not None:
        _number_in("temperature", temperature, 0.0, 2.0)
    if body.get("top_p") is not None:
        _number_in("top_p", body["top_p"], 0.0, 1.0)
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("The simulator supports n=1 only.", "n", "unsupported_value")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    specs = parse_tools(body, checker)
    choice, callable_tools = parse_tool_choice(body, specs)
    output = parse_response_format(body, checker, checked.mentions_json)
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise invalid("Invalid type for 'prompt_cache_key': expected a string.", "prompt_cache_key", "invalid_type")
    retention = body.get("prompt_cache_retention")
    if retention not in (None, "in_memory", "24h"):
        raise invalid(
            f"Invalid value: '{retention}'. Supported values are: 'in_memory' and '24h'.",
            "prompt_cache_retention",
            "invalid_value",
        )
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        tools=tuple(body.get("tools") or ()),
        max_tokens=max_tokens,
        stream=stream,
        include_usage=bool(isinstance(options, Mapping) and options.get("include_usage")),
        stop=_stop(body.get("stop")),
        prompt_cache_key=key or "",
        retention_24h=retention == "24h",
        prompt_text=checked.prompt_text,
        turn=Turn(checked.prompt_text, callable_tools, choice, output, checked.results),
        images=checked.images,
        output_schema=output.schema,
    )


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    chosen = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(f"Invalid type for '{name}': expected an integer.", name, "invalid_type")
        if value < 1:
            raise invalid(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                name,
                "integer_below_min_value",
            )
        chosen = value if chosen is None else min(chosen, value)
    return chosen


def _number_in(name: str, value: Any, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise invalid(f"Invalid type for '{name}': expected a number.", name, "invalid_type")
    if value < low:
        raise invalid(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, but got {value} instead.",
            name,
            "decimal_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, but got {value} instead.",
            name,
            "decimal_above_max_value",
        )


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise invalid("Invalid type for 'stop': expected one of a string or array of strings.", "stop", "invalid_type")
    if len(stop) > MAX_STOP:
        raise invalid(
            f"Invalid 'stop': array too long. Expected an array with maximum length {MAX_STOP}, "
            f"but got an array with length {len(stop)} instead.",
            "stop",
            "array_above_max_length",
        )
    return tuple(stop)
