"""OpenAI Chat Completions JSON <-> the gateway's protobuf request and response.

No HTTP here. Every rejection is an `InvalidRequest` whose message starts with the OpenAI
parameter at fault (`messages[2].content`, `max_tokens`, `costmesh.cache.ttl_seconds`...).
Before anything is read, the whole body is checked (`json_body.check_json`); the pipeline's
`validate` then bounds every field as it does for gRPC, and `param_of` turns the fields its
errors name back into OpenAI parameters. Tools and structured output: `openai_tools`.

costmesh's own request options travel in the `costmesh` object of the body (with the
OpenAI SDK: `extra_body={"costmesh": {...}}`); costmesh's extras come back in the
`costmesh` object of the response (the last chunk when streaming).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog
from costmesh.errors import InvalidRequest
from costmesh.gateway.http import openai_tools as tools
from costmesh.gateway.http.costmesh_options import AUTO_MODEL, apply_options, extra_headers, extras, route_model
from costmesh.gateway.http.json_body import (
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    boolean,
    check_json,
    data_url_image,
    get,
    integer,
    key_name,
    number,
    short,
    string,
)

__all__ = ["AUTO_MODEL", "KNOWN", "MAX_JSON_DEPTH", "ChatRequest", "check_json", "chunk", "completion_body",
           "extra_headers", "extras", "finish_reason", "param_of", "parse_chat_request", "usage"]

ROLES = {"system": common.ROLE_SYSTEM, "developer": common.ROLE_SYSTEM, "user": common.ROLE_USER,
         "assistant": common.ROLE_ASSISTANT, "tool": common.ROLE_TOOL}
# Accepted and passed on, or accepted and without effect here (documented in the README).
KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed",
         "n", "stream", "stream_options", "user", "metadata", "store", "costmesh", "response_format",
         "presence_penalty", "frequency_penalty", "logprobs", "tools", "tool_choice", "functions",
         "function_call", "parallel_tool_calls", "logit_bias", "top_logprobs", "service_tier",
         "reasoning_effort", "modalities", "audio", "prediction", "web_search_options", "verbosity",
         "prompt_cache_key", "safety_identifier"}
UNSUPPORTED = {"functions", "function_call", "logit_bias", "top_logprobs", "audio", "prediction",
               "web_search_options"}
# The domain's finish reasons -> OpenAI's.
FINISH_REASONS = {"stop": "stop", "length": "length", "refusal": "content_filter",
                  "content_filter": "content_filter", "tool_use": "tool_calls", "tool_calls": "tool_calls"}
# Field names of the pipeline's validation messages -> the OpenAI parameter they come from
# (first match wins; what follows the prefix, e.g. "[2]", is kept). Tools: `openai_tools`.
PIPELINE_PARAMS = {
    "sampling.max_tokens": "max_tokens",
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.stop": "stop",
    "sampling.seed": "seed",
    "cache": "costmesh.cache",
    "session_id": "costmesh.session_id",
    "request_id": "costmesh.request_id",
    "routing.model": "model",
    "routing": "costmesh.routing",
    "tenant_id": None,
}
_IMAGE_FIELD = re.compile(r"\.image(?:\.(?:url|media_type|data))?$")  # pipeline: ...content[1].image.url


@dataclass
class ChatRequest:
    """A parsed chat completion request: the pipeline's request plus what the reply echoes."""

    request: gw.CompleteRequest
    model: str
    stream: bool
    include_usage: bool


def parse_chat_request(body: Any, catalog: Catalog) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: expected a JSON object")
    check_json(body)
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        name = key_name(unknown[0])
        raise InvalidRequest(f"{name if name != '?' else 'body'}: unrecognized request argument")
    for name in sorted(UNSUPPORTED & set(body)):
        if body[name] not in (None, [], {}):
            raise InvalidRequest(f"{name}: not supported by costmesh"
                                 + ("; use tools and tool_choice" if name.startswith("function") else ""))
    if body.get("logprobs"):
        raise InvalidRequest("logprobs: not supported by costmesh")
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported")

    request = gw.CompleteRequest()
    model = route_model(body.get("model"), catalog, request)
    request.messages.extend(_messages(body.get("messages")))
    request.sampling.CopyFrom(_sampling(body))
    config = tools.tool_config(body)
    if config is not None:
        request.tools.CopyFrom(config)
    response_format = tools.response_format(body.get("response_format"))
    if response_format is not None:
        request.response_format.CopyFrom(response_format)
    apply_options(body.get("costmesh"), request)
    stream = boolean(body.get("stream", False), "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidRequest("stream_options: expected an object")
    include_usage = boolean(options.get("include_usage", False), "stream_options.include_usage")
    return ChatRequest(request, model, stream, include_usage)


def _messages(raw: Any) -> list[common.Message]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: a non-empty array of messages is required")
    return [_message(item, f"messages[{i}]") for i, item in enumerate(raw)]


def _message(item: Any, where: str) -> common.Message:
    if not isinstance(item, Mapping):
        raise InvalidRequest(f"{where}: expected an object")
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(
            f"{where}.role: {short(role)} is not supported; use system, developer, user, assistant or tool"
        )
    message = common.Message(role=ROLES[role])
    content = item.get("content")
    if role == "tool":
        message.tool_call_id = string(get(item, "tool_call_id", where), f"{where}.tool_call_id")
    elif role == "assistant":
        if item.get("function_call") is not None:
            raise InvalidRequest(f"{where}.function_call: not supported by costmesh; use tool_calls")
        if item.get("tool_calls") not in (None, []):
            message.tool_calls.extend(tools.assistant_tool_calls(item["tool_calls"], f"{where}.tool_calls"))
            if content is None or content == "":  # an answer that only calls tools
                return message
    if isinstance(content, str):
        message.content.add(text=content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            _part(part, message, role, f"{where}.content[{j}]")
    else:
        raise InvalidRequest(f"{where}.content: expected a string or an array of parts")
    return message


def _part(part: Any, message: common.Message, role: str, where: str) -> None:
    kind = get(part, "type", where)
    if kind == "text":
        message.content.add(text=string(get(part, "text", where), f"{where}.text"))
    elif kind == "refusal" and role == "assistant":  # an earlier answer's refusal, as its text
        message.content.add(text=string(get(part, "refusal", where), f"{where}.refusal"))
    elif kind == "image_url" and role in ("user", "system", "developer"):
        image = get(part, "image_url", where)
        url = string(get(image, "url", f"{where}.image_url"), f"{where}.image_url.url")
        message.content.add(image=data_url_image(url, f"{where}.image_url.url"))
    else:
        allowed = "text or image_url" if role in ("user", "system", "developer") else "text"
        raise InvalidRequest(f"{where}.type: {short(kind)} is not supported in a {role} message; use {allowed}")


def _sampling(body: Mapping) -> common.SamplingParams:
    sampling = common.SamplingParams()
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None:
        sampling.max_tokens = integer(max_tokens, name, 1, INT32_MAX, "must be a positive integer")
    else:
        sampling.max_tokens = 1024
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            setattr(sampling, key, number(body[key], key))
    stop = body.get("stop")
    if isinstance(stop, str):
        sampling.stop.append(stop)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise InvalidRequest("stop: at most 4 sequences")
        sampling.stop.extend(stop)
    elif stop is not None:
        raise InvalidRequest("stop: expected a string or an array of strings")
    seed = body.get("seed")
    if seed is not None:
        sampling.seed = integer(seed, "seed", INT64_MIN, INT64_MAX, "must be a 64-bit integer")
    return sampling


# -- responses ---------------------------------------------------------------------------


def usage(response: gw.CompleteResponse) -> dict[str, Any]:
    """Tokens a model processed for this request: none when the answer came from the cache."""
    u = response.usage
    if response.cached:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": 0}}
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}}


def finish_reason(response: gw.CompleteResponse) -> str:
    if response.tool_calls and (response.finish_reason or "tool_use") in ("stop", "tool_use"):
        return "tool_calls"
    return FINISH_REASONS.get(response.finish_reason or "stop", "stop")


def completion_body(chat: ChatRequest, response: gw.CompleteResponse, created: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = tools.tool_calls_json(response.tool_calls)
        if not response.text:
            message["content"] = None
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": response.model or chat.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(response),
        }],
        "usage": usage(response),
        "system_fingerprint": None,
        "costmesh": extras(response),
    }


def chunk(request_id: str, model: str, created: int, delta: dict, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def param_of(message: str) -> str | None:
    """The OpenAI parameter an `InvalidRequest` message names (its text before the first ': ')."""
    head, sep, _ = message.partition(": ")
    if not sep or " " in head:
        return None
    if head.startswith("messages[") and _IMAGE_FIELD.search(head):
        return _IMAGE_FIELD.sub(".image_url.url", head)
    tool_param = tools.pipeline_field(head)
    if tool_param is not None:
        return tool_param
    for prefix, param in PIPELINE_PARAMS.items():
        if head == prefix or head.startswith((prefix + ".", prefix + "[")):
            return param + head[len(prefix):] if param else None
    return head
