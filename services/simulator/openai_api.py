"""OpenAI API: POST /v1/chat/completions (plain and streamed)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from costmesh.services.simulator import openai_cache
from costmesh.services.simulator.errors import ApiError, openai_response
from costmesh.services.simulator.gate import OPENAI_NO_KEY, api_key, inject_fault, json_body
from costmesh.services.simulator.model_reply import openai_call_id, reply_to
from costmesh.services.simulator.openai_prompt_tokens import prompt_tokens as encode_prompt
from costmesh.services.simulator.openai_request import ChatRequest, parse_chat_request
from costmesh.services.simulator.sse import open_stream, send
from costmesh.services.simulator.state import STATE_KEY, SimState
from costmesh.services.simulator.text import Completion, finish_reply, json_pieces, stream_chunks

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
FINGERPRINT = "fp_costmesh_sim"
RETENTION_24H_S = 24 * 3600.0


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    model = None
    try:
        key = api_key(request, state, OPENAI_NO_KEY)
        body = await json_body(request)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        state.stats.request("openai.chat_completions", model)
        parsed = parse_chat_request(body, state.schemas)
        spec = state.openai_model(parsed.model)
        await inject_fault(request, state, spec)
        completion, usage = answer(state, key, parsed)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:29]}"
        if parsed.stream:
            return await _stream(request, state, parsed, completion_id, completion, usage)
        await state.pacer.whole(completion.output_tokens)
        return web.json_response(_completion(completion_id, parsed.model, completion, usage), headers=_headers())
    except ApiError as error:
        if model:
            state.stats.model(model).errors += 1
        return openai_response(error)


def answer(state: SimState, key: str, parsed: ChatRequest) -> tuple[Completion, dict[str, Any]]:
    """The answer to a parsed request and its usage, prompt caching applied (shared with the batch API)."""
    spec = state.openai_model(parsed.model)
    tokens = encode_prompt(state.counter, parsed.messages, parsed.tools, parsed.output_schema, parsed.images)
    prompt_tokens = len(tokens)
    if prompt_tokens > spec.context_window:
        raise ApiError(
            400,
            f"This model's maximum context length is {spec.context_window} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    ttl = RETENTION_24H_S if parsed.retention_24h else state.config.openai_cache_ttl_s
    namespace = f"{key}\x00{spec.id}\x00{parsed.prompt_cache_key}"
    cached = openai_cache.apply_cache(state.openai_cache, namespace, tokens, ttl)
    limit = parsed.max_tokens if parsed.max_tokens is not None else max(spec.context_window - prompt_tokens, 1)
    reply = reply_to(parsed.turn, spec, state.books, openai_call_id)
    completion = finish_reply(reply, state.counter, limit, parsed.stop, objects_only=False)
    state.stats.usage(spec.id, prompt_tokens - cached, completion.output_tokens, cached, 0)  # writes are free
    return completion, _usage(prompt_tokens, cached, completion.output_tokens)


def completion_body(completion_id: str, model: str, completion: Completion, usage: dict[str, Any]) -> dict[str, Any]:
    """A whole chat.completion object (what a batch output line carries as its body)."""
    return _completion(completion_id, model, completion, usage)


def _headers() -> dict[str, str]:
    return {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "1"}


def _usage(prompt_tokens: int, cached: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(completion_id: str, model: str, completion: Completion, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "logprobs": None,
                "finish_reason": FINISH_REASONS[completion.stop_reason],
            }
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if completion.text or not completion.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in completion.tool_calls
        ]
    return message


async def _stream(
    request: web.Request,
    state: SimState,
    parsed: ChatRequest,
    completion_id: str,
    completion: Completion,
    usage: dict[str, Any],
) -> web.StreamResponse:
    response = await open_stream(request, _headers())
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": parsed.model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if parsed.include_usage:
            out["usage"] = None
        return out

    try:
        await state.pacer.first_token()
        opening: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if completion.tool_calls and not completion.text:
            opening["content"] = None  # OpenAI opens with the first call's head in the same delta
        else:
            await send(response, chunk(opening, None))
            opening = {}
        for piece in stream_chunks(completion.text):
            await state.pacer.tokens(state.counter.count(piece))
            await send(response, chunk({"content": piece}, None))
        for index, call in enumerate(completion.tool_calls):
            head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            await send(response, chunk({**opening, "tool_calls": [head]}, None))
            opening = {}
            for piece in json_pieces(call.arguments):
                await state.pacer.tokens(state.counter.count(piece))
                await send(response, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None))
        await send(response, chunk({}, FINISH_REASONS[completion.stop_reason]))
        if parsed.include_usage:
            final = {**chunk({}, None), "choices": [], "usage": usage}
            await send(response, final)
        await send(response, "[DONE]")
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        state.log.debug("client went away mid-stream", model=parsed.model)
    return response
