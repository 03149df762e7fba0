"""The gateway's answer -> an Anthropic Messages API `message` (and its parts a stream reuses).

`content` holds a text block (when the answer has text) then one `tool_use` block per call,
its `input` the parsed arguments. `stop_reason` is Anthropic's: end_turn, max_tokens,
stop_sequence, tool_use, refusal, pause_turn. `usage.input_tokens` counts the prompt tokens
that were neither read from nor written to the provider's prompt cache, as Anthropic counts
them (the domain's `input_tokens` counts all three); a cache hit reports no model tokens (its
cost is in `costmesh`).
"""

from __future__ import annotations

import json
from typing import Any

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.gateway.http.costmesh_options import extras

# The domain's finish reasons -> Anthropic's stop reasons.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_use": "tool_use", "stop_sequence": "stop_sequence",
                "refusal": "refusal", "content_filter": "refusal", "pause": "pause_turn"}


def stop_reason(response: gw.CompleteResponse) -> str:
    finish = response.finish_reason or "stop"
    if response.tool_calls and finish in ("stop", "tool_use"):
        return "tool_use"
    return STOP_REASONS.get(finish, "end_turn")


def usage(response: gw.CompleteResponse) -> dict[str, int]:
    u = response.usage
    if response.cached:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    uncached = max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens)
    return {"input_tokens": uncached, "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens, "cache_read_input_tokens": u.cache_read_tokens}


def tool_input(arguments_json: str) -> Any:
    """A call's arguments as `input`: `{}` when empty; the text itself when it is not a JSON
    object (only a pinned model's answer can hold one: with `auto` the cascade's gate refuses it)."""
    if not arguments_json.strip():
        return {}
    try:
        value = json.loads(arguments_json)
    except (ValueError, RecursionError):
        return arguments_json
    return value if isinstance(value, dict) else arguments_json


def tool_use_block(call_id: str, name: str, arguments_json: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input(arguments_json)}


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def message_body(model: str, response: gw.CompleteResponse) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if response.text:
        content.append({"type": "text", "text": response.text})
    content.extend(tool_use_block(c.id, c.name, c.arguments_json) for c in response.tool_calls)
    return {
        "id": message_id(response.request_id),
        "type": "message",
        "role": "assistant",
        "model": response.model or model,
        "content": content,
        "stop_reason": stop_reason(response),
        "stop_sequence": None,
        "usage": usage(response),
        "costmesh": extras(response),
    }
