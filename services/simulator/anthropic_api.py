"""Anthropic Messages API: POST /v1/messages (plain and streamed) and /v1/messages/count_tokens."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from costmesh.services.simulator import anthropic_cache
from costmesh.services.simulator.anthropic_cache import CacheUsage
from costmesh.services.simulator.anthropic_request import MessagesRequest, parse_messages_request
from costmesh.services.simulator.errors import ApiError, anthropic_response
from costmesh.services.simulator.gate import ANTHROPIC_NO_KEY, api_key, inject_fault, json_body
from costmesh.services.simulator.model_reply import anthropic_call_id, reply_to
from costmesh.services.simulator.model_turn import ToolCall
from costmesh.services.simulator.sse import open_stream, send
from costmesh.services.simulator.state import STATE_KEY, SimState
from costmesh.services.simulator.text import Completion, finish_reply, json_pieces, stream_chunks


async def create_message(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    model = None
    try:
        key = api_key(request, state, ANTHROPIC_NO_KEY)
        body = await json_body(request)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        state.stats.request("anthropic.messages", model)
        parsed = parse_messages_request(body, state.counter, state.schemas)
        spec = state.anthropic_model(parsed.model)
        await inject_fault(request, state, spec)
        usage, completion = answer(state, key, parsed)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if parsed.stream:
            return await _stream(request, state, parsed, message_id, usage, completion)
        await state.pacer.whole(completion.output_tokens)
        return web.json_response(
            _message(message_id, parsed.model, completion, usage),
            headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"},
        )
    except ApiError as error:
        if model:
            state.stats.model(model).errors += 1
        return anthropic_response(error)


def answer(state: SimState, key: str, parsed: MessagesRequest) -> tuple[CacheUsage, Completion]:
    """The answer to a parsed request, with its prompt-cache usage (shared with the batch API)."""
    spec = state.anthropic_model(parsed.model)
    if parsed.input_tokens > spec.context_window:
        raise ApiError(400, f"prompt is too long: {parsed.input_tokens} tokens > {spec.context_window} maximum")
    usage = anthropic_cache.apply_cache(
        state.anthropic_cache, f"{key}\x00{spec.id}", parsed.blocks, parsed.input_tokens, spec.min_cacheable_tokens
    )
    reply = reply_to(parsed.turn, spec, state.books, anthropic_call_id, objects_only=True, preamble=True)
    completion = finish_reply(reply, state.counter, parsed.max_tokens, parsed.stop_sequences, objects_only=True)
    state.stats.usage(
        spec.id,
        usage.input_tokens,
        completion.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    )
    return usage, completion


def message_body(message_id: str, model: str, completion: Completion, usage: CacheUsage) -> dict[str, Any]:
    """A whole Message object, as `messages.create` (and a batch result) returns it."""
    return _message(message_id, model, completion, usage)


async def count_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        api_key(request, state, ANTHROPIC_NO_KEY)
        body = await json_body(request)
        parsed = parse_messages_request(body, state.counter, state.schemas, count_only=True)
        state.stats.request("anthropic.count_tokens", None)
        state.anthropic_model(parsed.model)
        return web.json_response({"input_tokens": parsed.input_tokens})
    except ApiError as error:
        return anthropic_response(error)


def _message(message_id: str, model: str, completion: Completion, usage: CacheUsage) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(completion),
        "stop_reason": completion.stop_reason,
        "stop_sequence": completion.stop_sequence,
        "usage": {**usage.as_dict(), "output_tokens": completion.output_tokens, "service_tier": "standard"},
    }


def _content(completion: Completion) -> list[dict[str, Any]]:
    """Text (when there is some, or nothing else), then one tool_use block per call."""
    blocks: list[dict[str, Any]] = []
    if completion.text or not completion.tool_calls:
        blocks.append({"type": "text", "text": completion.text})
    for call in completion.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input()})
    return blocks


async def _stream(
    request: web.Request,
    state: SimState,
    parsed: MessagesRequest,
    message_id: str,
    usage: CacheUsage,
    completion: Completion,
) -> web.StreamResponse:
    response = await open_stream(request, {"request-id": f"req_{uuid.uuid4().hex[:24]}"})
    start = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage.as_dict(), "output_tokens": 1, "service_tier": "standard"},
    }
    try:
        await send(response, {"type": "message_start", "message": start}, "message_start")
        index = 0
        text_block = bool(completion.text) or not completion.tool_calls
        if text_block:
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            await send(response, block, "content_block_start")
        await send(response, {"type": "ping"}, "ping")
        await state.pacer.first_token()
        if text_block:
            for piece in stream_chunks(completion.text):
                await state.pacer.tokens(state.counter.count(piece))
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
                await send(response, delta, "content_block_delta")
            await send(response, {"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        for call in completion.tool_calls:
            await _stream_tool_use(response, state, index, call)
            index += 1
        final_usage = {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": completion.output_tokens,
        }
        delta = {"stop_reason": completion.stop_reason, "stop_sequence": completion.stop_sequence}
        await send(response, {"type": "message_delta", "delta": delta, "usage": final_usage}, "message_delta")
        await send(response, {"type": "message_stop"}, "message_stop")
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        state.log.debug("client went away mid-stream", model=parsed.model)
    return response


async def _stream_tool_use(response: web.StreamResponse, state: SimState, index: int, call: ToolCall) -> None:
    """A tool_use block as Anthropic streams it: empty input at the start, then the input's JSON in pieces."""
    start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
    await send(response, {"type": "content_block_start", "index": index, "content_block": start}, "content_block_start")
    for piece in ["", *json_pieces(call.arguments)]:
        await state.pacer.tokens(state.counter.count(piece))
        delta = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        await send(response, delta, "content_block_delta")
    await send(response, {"type": "content_block_stop", "index": index}, "content_block_stop")
