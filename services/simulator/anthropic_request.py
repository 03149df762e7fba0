"""Anthropic Messages request: validation (messages worded like the real API) and the prompt layout.

The layout is the prompt as cacheable blocks in the order Anthropic caches them (tools,
system, messages), each with its tokens, a digest of the prefix ending at it, and its
cache_control TTL when it is a breakpoint. Token counts match `costmesh.tokens.count_message_tokens`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator.anthropic_content import ToolPairing, block_tokens
from costmesh.services.simulator.anthropic_tools import parse_output_format, parse_tool_choice, parse_tools
from costmesh.services.simulator.errors import invalid
from costmesh.services.simulator.model_turn import Turn
from costmesh.services.simulator.schema_checks import SchemaChecker
from costmesh.tokens import REPLY_PRIMING, TokenCounter, tool_text

MAX_BREAKPOINTS = 4
TTLS = {"5m": 300.0, "1h": 3600.0}
ROLES = ("user", "assistant")


@dataclass(frozen=True)
class PromptBlock:
    tokens: int  # content tokens plus the message overhead when it opens a message
    digest: str  # of the whole prefix ending with this block
    ttl: str | None  # "5m" | "1h" when a cache breakpoint sits on this block


@dataclass(frozen=True)
class MessagesRequest:
    model: str
    max_tokens: int
    stream: bool
    stop_sequences: tuple[str, ...]
    blocks: tuple[PromptBlock, ...]
    input_tokens: int  # all of them, cached or not
    prompt_text: str  # the last user message's text, what answers are looked up by
    turn: Turn  # what the model is asked: tools, tool choice, output format, tool results


def parse_messages_request(
    body: Mapping[str, Any], counter: TokenCounter, checker: SchemaChecker, *, count_only: bool = False
) -> MessagesRequest:
    """Validate a /v1/messages (or count_tokens) body and lay its prompt out; raises ApiError(400)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required" if model is None else "model: Input should be a valid string")
    max_tokens = body.get("max_tokens")
    if not count_only:
        if max_tokens is None:
            raise invalid("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise invalid("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    _check_sampling(body)
    stop_sequences = body.get("stop_sequences") or []
    if not isinstance(stop_sequences, list) or not all(isinstance(s, str) for s in stop_sequences):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")

    tools = parse_tools(body.get("tools"), checker)
    choice = parse_tool_choice(body.get("tool_choice"), tools, bool(body.get("tools")))
    output = parse_output_format(body, checker)
    layout = _Layout()
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool.get("name"), str):
            raise invalid(f"tools.{i}.name: Field required")
        layout.add("tools", None, tool, counter.count(tool_text(tool)), _ttl(tool, f"tools.{i}"))
    _add_system(layout, body.get("system"), counter)
    prompt_text = ""
    pairing = ToolPairing()
    before_last = pairing.results
    for i, message in enumerate(messages):
        before_last = pairing.results
        prompt_text = _add_message(layout, pairing, i, message, len(messages), counter) or prompt_text
    pairing.check_tools_defined(bool(body.get("tools")))
    prefill = _prefill(messages[-1])
    results = pairing.results if prefill is None else before_last  # a prefill continues the turn before it
    schema_tokens = 0
    if output.schema is not None:  # structured outputs put the schema in the prompt
        schema_tokens = counter.count(json.dumps(output.schema, sort_keys=True, separators=(",", ":")))
    if body.get("cache_control") is not None:
        layout.mark_last(_ttl(body, "cache_control") or "5m")
    layout.check_breakpoints()
    return MessagesRequest(
        model=model,
        max_tokens=int(max_tokens or 0),
        stream=stream,
        stop_sequences=tuple(stop_sequences),
        blocks=tuple(layout.blocks),
        input_tokens=layout.total + REPLY_PRIMING + schema_tokens,
        prompt_text=prompt_text,
        turn=Turn(prompt_text, tools, choice, output, results, prefill or ""),
    )


def _check_sampling(body: Mapping[str, Any]) -> None:
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise invalid(f"{name}: Input should be a valid number")
        if not 0.0 <= value <= high:
            raise invalid(f"{name}: range: 0..{high:g}")


def _add_system(layout: _Layout, system: Any, counter: TokenCounter) -> None:
    if system is None or system == "" or system == []:
        return
    overhead = counter.message_overhead("system")
    if isinstance(system, str):
        layout.add("system", "system", system, overhead + counter.count(system), None, opens=True)
        return
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"system.{j}: Input should be a text block")
        if not block["text"]:
            raise invalid("system: text content blocks must be non-empty")
        tokens = counter.count(block["text"]) + (overhead if j == 0 else 0)
        layout.add("system", "system", block, tokens, _ttl(block, f"system.{j}"), opens=j == 0)


def _add_message(
    layout: _Layout, pairing: ToolPairing, i: int, message: Any, total: int, counter: TokenCounter
) -> str | None:
    """Add one message's blocks; returns its text when it is a user message."""
    if not isinstance(message, Mapping):
        raise invalid(f"messages.{i}: Input should be a valid dictionary")
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if "content" not in message:
        raise invalid(f"messages.{i}.content: Field required")
    content = message["content"]
    overhead = counter.message_overhead(role)
    final_assistant = role == "assistant" and i == total - 1
    if isinstance(content, str):
        if not content and not final_assistant:
            raise invalid(
                f"messages.{i}: all messages must have non-empty content "
                "except for the optional final assistant message"
            )
        layout.add("messages", role, content, overhead + counter.count(content), None, opens=True)
        pairing.add(i, role, [])
        return content if role == "user" else None
    if not isinstance(content, list):
        raise invalid(f"messages.{i}.content: Input should be a valid string or a list of content blocks")
    if not content:
        if not final_assistant:
            raise invalid(
                f"messages.{i}: all messages must have non-empty content "
                "except for the optional final assistant message"
            )
        layout.add("messages", role, "", overhead, None, opens=True)
        pairing.add(i, role, [])
        return None
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise invalid(f"messages.{i}.content.{j}.type: Field required")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                raise invalid(f"messages.{i}.content.{j}.text: Field required")
            if not block["text"]:
                raise invalid("messages: text content blocks must be non-empty")
            texts.append(block["text"])
        tokens = block_tokens(counter, block, f"messages.{i}.content.{j}", role) + (overhead if j == 0 else 0)
        layout.add("messages", role, block, tokens, _ttl(block, f"messages.{i}.content.{j}"), opens=j == 0)
    pairing.add(i, role, content)
    return "\n".join(texts) if role == "user" else None


def _prefill(message: Mapping[str, Any]) -> str | None:
    """A final assistant message's text: the start of the answer, which the model continues (None
    when the conversation ends with the user). Like the real API, it may not end with blanks."""
    if message["role"] != "assistant":
        return None
    content = message["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if blocks and blocks[-1]["type"] == "text" and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
        raise invalid("messages: final assistant content cannot end with trailing whitespace")
    return "".join(block["text"] for block in blocks if block["type"] == "text")


def _ttl(block: Mapping[str, Any], where: str) -> str | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in TTLS:
        raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return ttl


class _Layout:
    """Accumulates blocks, chaining each block's digest onto the previous one."""

    def __init__(self) -> None:
        self.blocks: list[PromptBlock] = []
        self.total = 0
        self._digest = hashlib.sha256(b"anthropic-prefix-v1").hexdigest()

    def add(
        self, section: str, role: str | None, payload: Any, tokens: int, ttl: str | None, *, opens: bool = False
    ) -> None:
        if isinstance(payload, Mapping):
            payload = {k: v for k, v in payload.items() if k != "cache_control"}
        part = json.dumps([section, role, opens, payload], sort_keys=True, separators=(",", ":"), default=str)
        self._digest = hashlib.sha256(f"{self._digest}\x00{part}".encode()).hexdigest()
        self.blocks.append(PromptBlock(tokens, self._digest, ttl))
        self.total += tokens

    def mark_last(self, ttl: str) -> None:
        """Top-level `cache_control`: a breakpoint on the last block (unless it has one)."""
        last = self.blocks[-1]
        if last.ttl is None:
            self.blocks[-1] = PromptBlock(last.tokens, last.digest, ttl)

    def check_breakpoints(self) -> None:
        ttls = [b.ttl for b in self.blocks if b.ttl]
        if len(ttls) > MAX_BREAKPOINTS:
            raise invalid(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(ttls)}."
            )
        if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
            raise invalid(
                "cache_control: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"
            )


def layout_tokens(blocks: Sequence[PromptBlock]) -> list[int]:
    """Cumulative tokens at the end of each block."""
    out, total = [], 0
    for block in blocks:
        total += block.tokens
        out.append(total)
    return out
