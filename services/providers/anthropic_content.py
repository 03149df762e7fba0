"""Domain messages and tools as Anthropic Messages API blocks, before any cache breakpoint.

The one translation both the request builder (`anthropic_adapter.build_request`) and the
breakpoint placement (`cache_breakpoints.layout`) use, so the prompt is counted exactly as it
is sent:

- a text part is a text block, an image part an image block (base64 source, or url);
- an assistant message's tool calls are `tool_use` blocks after its text (their input is the
  parsed arguments; see `tool_input` for arguments that do not parse);
- a TOOL message is one `tool_result` block (`tool_use_id`, its parts as content, `is_error`),
  and a run of TOOL messages is one user turn: Anthropic takes every result of an assistant
  turn's calls in the user turn right after it;
- with tenant isolation (`tenant_scoped`), a first system block names the tenant by a digest;
- tool definitions are `{name, description, input_schema, strict}`; a conversation that calls
  tools but offers none gets a definition per called name with an open schema (the API takes
  tool_use blocks only with tools defined) and tool choice "none".

A block key is (message index, block index within that message as sent); tool definitions
are keyed (TOOLS, tool index).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from costmesh.domain import Image, Message, Part, Role, ToolCall
from costmesh.errors import InvalidRequest
from costmesh.output_spec import OutputSpec, Tool

TOOLS = -1  # the message index of a tool definition's key
SCOPE_MARKER = "[cache scope {digest}]"  # the first system block under tenant isolation
UNPARSED_ARGUMENTS = "_unparsed_arguments"  # where arguments that are not a JSON object go
_TOOL_USE_ID = re.compile(r"[A-Za-z0-9_-]+")
OPEN_SCHEMA = {"type": "object"}

Key = tuple[int, int]


@dataclass(frozen=True)
class Block:
    key: Key
    body: dict[str, Any]  # the block as sent, without cache_control
    client_mark: bool = False  # the client placed a breakpoint after it
    images: tuple[Image, ...] = ()  # the images it holds (counted by their pixels, not their bytes)


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "assistant"
    blocks: tuple[Block, ...]


def content_block(part: Part, where: str) -> dict[str, Any]:
    if part.image is None:
        return {"type": "text", "text": part.text or ""}
    image = part.image
    if image.data:
        source = {
            "type": "base64",
            "media_type": image.media_type or "image/png",
            "data": base64.b64encode(image.data).decode("ascii"),
        }
    elif image.url:
        source = {"type": "url", "url": image.url}
    else:
        raise InvalidRequest(f"{where}: an image part needs data or url")
    return {"type": "image", "source": source}


def tool_use_id(call_id: str) -> str:
    """The id as Anthropic takes it ([A-Za-z0-9_-]); another id maps to a stable digest of it,
    the same for the call and its result."""
    if _TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "cm_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def tenant_scoped(messages: Sequence[Message], tenant_id: str) -> tuple[Message, ...]:
    """`messages` behind a first system message naming `tenant_id` by a digest.

    Anthropic's prompt cache is keyed on the exact prefix (tools, then system, then messages)
    within an organization: without this, a tenant sending the same long document as another
    reads the other's cache entry, and learns from `cache_read_input_tokens` what it sent
    recently. With this block at the start of the system prompt, every cached prefix that
    reaches the system prompt or the messages differs by tenant (about 15 tokens more a
    request, and a prefix shared by several tenants is written once for each). A tool-only
    prefix comes before it: `anthropic_adapter.build_request` drops breakpoints on tool
    definitions under isolation."""
    digest = hashlib.sha256(b"costmesh-tenant-scope-v1\x00" + tenant_id.encode("utf-8", "surrogatepass")).hexdigest()
    return (Message.of(Role.SYSTEM, SCOPE_MARKER.format(digest=digest[:32])), *messages)


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as the tool_use input (a JSON object). Empty arguments are `{}`; text
    that is not a JSON object (a model's malformed call, from a conversation another provider
    answered) is kept whole as `{"_unparsed_arguments": text}`, so the model still sees what was
    called rather than an empty call."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {UNPARSED_ARGUMENTS: arguments}


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": tool_input(call.arguments)}


def tool_result_block(message: Message, where: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id(message.tool_call_id)}
    if any(part.image is not None for part in message.parts):
        block["content"] = [
            content_block(part, f"{where}.content[{p}]")
            for p, part in enumerate(message.parts)
            if part.image is not None or part.text
        ]
    elif message.text:
        block["content"] = message.text
    if message.is_error:
        block["is_error"] = True
    return block


def message_blocks(message: Message, m: int) -> list[Block]:
    """One message's blocks as sent, each keyed and marked where the client put a breakpoint."""
    where = f"messages[{m}]"
    if message.role == Role.TOOL:  # one block: a mark on any of its parts goes after the result
        images = tuple(p.image for p in message.parts if p.image is not None)
        marked = any(p.cache_breakpoint for p in message.parts)
        return [Block((m, 0), tool_result_block(message, where), marked, images)]
    parts = list(enumerate(message.parts))
    if message.tool_calls:  # the text beside tool calls is often empty, a block Anthropic refuses
        parts = [(p, part) for p, part in parts if part.image is not None or part.text]
    out = [Block((m, b), content_block(part, f"{where}.content[{p}]"), part.cache_breakpoint,
                 () if part.image is None else (part.image,))
           for b, (p, part) in enumerate(parts)]
    out += [Block((m, len(out) + j), tool_use_block(call)) for j, call in enumerate(message.tool_calls)]
    return out


def prompt(messages: Sequence[Message]) -> tuple[list[Block], list[Turn]]:
    """The system blocks and the turns, in order; a run of TOOL messages is one user turn."""
    system: list[Block] = []
    turns: list[Turn] = []
    previous: Role | None = None
    for m, message in enumerate(messages):
        blocks = message_blocks(message, m)
        if message.role == Role.SYSTEM:
            if any(b.body["type"] != "text" for b in blocks):
                raise InvalidRequest(f"messages[{m}]: a system message takes text parts only")
            system.extend(blocks)
            continue
        if message.role == Role.TOOL and previous == Role.TOOL:
            turns[-1] = Turn("user", turns[-1].blocks + tuple(blocks))
        else:
            turns.append(Turn("assistant" if message.role == Role.ASSISTANT else "user", tuple(blocks)))
        previous = message.role
    return system, turns


def offered_tools(output: OutputSpec, messages: Sequence[Message]) -> tuple[Tool, ...]:
    """The tools to define: the request's, or, when it offers none but its conversation calls
    tools, one open definition per called name (the choice is then "none": see `tool_choice`)."""
    if output.tools:
        return output.tools
    names = dict.fromkeys(call.name for message in messages for call in message.tool_calls)
    return tuple(Tool(name, parameters=OPEN_SCHEMA) for name in names)


def tool_param(tool: Tool) -> dict[str, Any]:
    param: dict[str, Any] = {"name": tool.name}
    if tool.description:
        param["description"] = tool.description
    param["input_schema"] = dict(tool.parameters)
    if tool.strict:
        param["strict"] = True
    return param
