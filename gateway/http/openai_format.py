"""OpenAI Chat Completions JSON <-> the gateway's protobuf request and response.

No HTTP here. Every rejection is an `InvalidRequest` whose message starts with the OpenAI
parameter at fault (`messages[2].content`, `max_tokens`, `costmesh.cache.ttl_seconds`...).
Before anything is read, the whole body is checked (`check_json`): at most `MAX_JSON_DEPTH`
levels, no lone surrogate in any string; integers are checked against their protobuf range
before they are set. The pipeline's `validate` then bounds every field as it does for gRPC.

costmesh's own request options travel in the `costmesh` object of the body (with the
OpenAI SDK: `extra_body={"costmesh": {...}}`); costmesh's extras come back in the
`costmesh` object of the response (the last chunk when streaming).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog, Tier
from costmesh.errors import InvalidRequest

AUTO_MODEL = "auto"  # let costmesh pick: cache, classifier, cascade
ROLES = {"system": common.ROLE_SYSTEM, "developer": common.ROLE_SYSTEM,
         "user": common.ROLE_USER, "assistant": common.ROLE_ASSISTANT}
# Accepted and passed on, or accepted and without effect here (documented in the README).
KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed",
         "n", "stream", "stream_options", "user", "metadata", "store", "costmesh", "response_format",
         "presence_penalty", "frequency_penalty", "logprobs", "tools", "tool_choice", "functions",
         "function_call", "parallel_tool_calls", "logit_bias", "top_logprobs", "service_tier",
         "reasoning_effort", "modalities", "audio", "prediction", "web_search_options", "verbosity",
         "prompt_cache_key", "safety_identifier"}
UNSUPPORTED = {"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logit_bias",
               "top_logprobs", "audio", "prediction", "web_search_options"}
FINISH_REASONS = {"stop": "stop", "length": "length", "refusal": "content_filter",
                  "content_filter": "content_filter", "tool_calls": "tool_calls"}
CACHE_STATUS = {
    gw.CACHE_STATUS_MISS: "miss",
    gw.CACHE_STATUS_EXACT_HIT: "exact_hit",
    gw.CACHE_STATUS_SEMANTIC_HIT: "semantic_hit",
    gw.CACHE_STATUS_BYPASSED: "bypassed",
    gw.CACHE_STATUS_UNAVAILABLE: "unavailable",
}
# Field names of the pipeline's validation messages -> the OpenAI parameter they come from
# (first match wins; what follows the prefix, e.g. "[2]", is kept).
PIPELINE_PARAMS = {
    "sampling.max_tokens": "max_tokens",
    "sampling.temperature": "temperature",
    "sampling.top_p": "top_p",
    "sampling.stop": "stop",
    "sampling.seed": "seed",
    "cache.ttl_seconds": "costmesh.cache.ttl_seconds",
    "cache.tags": "costmesh.cache.tags",
    "session_id": "costmesh.session_id",
    "request_id": "costmesh.request_id",
    "routing.model": "model",
    "routing": "costmesh.routing",
    "tenant_id": None,
}
_IMAGE_FIELD = re.compile(r"\.image(?:\.(?:url|media_type|data))?$")  # pipeline: ...content[1].image.url
MAX_JSON_DEPTH = 32  # nesting levels of the request body (a chat request needs 6)
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_MODEL_CHARS = 128
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass
class ChatRequest:
    """A parsed chat completion request: the pipeline's request plus what the reply echoes."""

    request: gw.CompleteRequest
    model: str
    stream: bool
    include_usage: bool


def check_json(body: Any) -> None:
    """The parsed body as a whole: nested at most `MAX_JSON_DEPTH` deep, every string (keys
    included) valid Unicode, i.e. no lone surrogate (JSON's `"\\ud800"` escapes allow them)."""
    stack: list[tuple[Any, tuple | None, int]] = [(body, None, 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(f"{_path(path) or 'body'}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidRequest(f"{_path(path) or 'body'}: a lone surrogate is not valid Unicode")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise InvalidRequest(f"{_path(path) or 'body'}: a lone surrogate in a key is not valid Unicode")
                stack.append((item, (path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, (path, i), depth + 1) for i, item in enumerate(value))


def _path(path: tuple | None) -> str:
    """`messages[0].content` from the linked (parent, key) pairs `check_json` keeps."""
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    out = ""
    for key in reversed(keys):
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{_name(key)}" if out else _name(key)
    return out


def _name(key: str) -> str:
    """A key of the body as an error may name it: "?" unless a plain identifier."""
    return key if _NAME.fullmatch(key) else "?"


def parse_chat_request(body: Any, catalog: Catalog) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: expected a JSON object")
    check_json(body)
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        name = _name(unknown[0])
        raise InvalidRequest(f"{name if name != '?' else 'body'}: unrecognized request argument")
    for name in sorted(UNSUPPORTED & set(body)):
        if body[name] not in (None, [], {}):
            raise InvalidRequest(f"{name}: not supported by costmesh")
    if body.get("logprobs"):
        raise InvalidRequest("logprobs: not supported by costmesh")
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported")
    response_format = body.get("response_format")
    if response_format not in (None, {}) and _get(response_format, "type", "response_format") != "text":
        raise InvalidRequest("response_format: only {'type': 'text'} is supported")

    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: required; use 'auto' to let costmesh choose, or a model of GET /v1/models")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"model: longer than {MAX_MODEL_CHARS} characters; see GET /v1/models")
    request = gw.CompleteRequest(messages=_messages(body.get("messages")))
    if model != AUTO_MODEL:
        if model not in catalog.models:
            raise InvalidRequest(f"model: {model!r} is not served here; see GET /v1/models")
        request.routing.model = model
    request.sampling.CopyFrom(_sampling(body))
    _costmesh_options(body.get("costmesh"), request)
    stream = _bool(body.get("stream", False), "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidRequest("stream_options: expected an object")
    include_usage = _bool(options.get("include_usage", False), "stream_options.include_usage")
    return ChatRequest(request, model, stream, include_usage)


def _messages(raw: Any) -> list[common.Message]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: a non-empty array of messages is required")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"messages[{i}]: expected an object")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(
                f"messages[{i}].role: {_short(role)} is not supported; use system, developer, user or assistant"
            )
        message = common.Message(role=ROLES[role])
        content = item.get("content")
        if isinstance(content, str):
            message.content.add(text=content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                _part(part, message, f"messages[{i}].content[{j}]")
        else:
            raise InvalidRequest(f"messages[{i}].content: expected a string or an array of parts")
        out.append(message)
    return out


def _part(part: Any, message: common.Message, where: str) -> None:
    kind = _get(part, "type", where)
    if kind == "text":
        text = _get(part, "text", where)
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text: expected a string")
        message.content.add(text=text)
    elif kind == "image_url":
        image = _get(part, "image_url", where)
        url = _get(image, "url", f"{where}.image_url")
        if not isinstance(url, str):
            raise InvalidRequest(f"{where}.image_url.url: expected a string")
        message.content.add(image=_image(url, f"{where}.image_url.url"))
    else:
        raise InvalidRequest(f"{where}.type: {_short(kind)} is not supported; use text or image_url")


def _image(url: str, where: str) -> common.Image:
    if not url.startswith("data:"):
        return common.Image(url=url)
    header, _, payload = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not media_type.startswith("image/"):
        raise InvalidRequest(f"{where}: a data URL must be data:image/<type>;base64,<data>")
    try:
        return common.Image(media_type=media_type, data=base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: invalid base64") from None


def _sampling(body: Mapping) -> common.SamplingParams:
    sampling = common.SamplingParams()
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None:
        sampling.max_tokens = _integer(max_tokens, name, 1, INT32_MAX, "must be a positive integer")
    else:
        sampling.max_tokens = 1024
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InvalidRequest(f"{key}: must be a number")
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise InvalidRequest(f"{key}: must be a finite number")
            setattr(sampling, key, number)
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
        sampling.seed = _integer(seed, "seed", INT64_MIN, INT64_MAX, "must be a 64-bit integer")
    return sampling


def _integer(value: Any, where: str, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{where}: {what} (from {low} to {high})")
    return value


def _short(value: Any, limit: int = 40) -> str:
    """A value quoted in an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _costmesh_options(raw: Any, request: gw.CompleteRequest) -> None:
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise InvalidRequest("costmesh: expected an object")
    unknown = sorted(set(raw) - {"cache", "routing", "session_id", "request_id"})
    if unknown:
        raise InvalidRequest(f"costmesh.{_name(unknown[0])}: unknown option")
    for key in ("session_id", "request_id"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise InvalidRequest(f"costmesh.{key}: expected a string")
            setattr(request, key, raw[key])
    cache = raw.get("cache") or {}
    if not isinstance(cache, Mapping):
        raise InvalidRequest("costmesh.cache: expected an object")
    for key in sorted(set(cache) - {"bypass", "ttl_seconds", "tags", "session_scoped"}):
        raise InvalidRequest(f"costmesh.cache.{_name(key)}: unknown option")
    request.cache.bypass = _bool(cache.get("bypass", False), "costmesh.cache.bypass")
    request.cache.session_scoped = _bool(cache.get("session_scoped", False), "costmesh.cache.session_scoped")
    ttl = cache.get("ttl_seconds", 0)
    request.cache.ttl_seconds = _integer(ttl, "costmesh.cache.ttl_seconds", 0, INT32_MAX,
                                         "must be a whole number of seconds")
    tags = cache.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidRequest("costmesh.cache.tags: expected an array of strings")
    request.cache.tags.extend(tags)
    routing = raw.get("routing") or {}
    if not isinstance(routing, Mapping):
        raise InvalidRequest("costmesh.routing: expected an object")
    for key in sorted(set(routing) - {"min_tier", "max_tier"}):
        raise InvalidRequest(f"costmesh.routing.{_name(key)}: unknown option; pin a model with `model`")
    for key in ("min_tier", "max_tier"):
        if routing.get(key) is not None:
            name = routing[key]
            if not isinstance(name, str) or name.upper() not in Tier.__members__:
                raise InvalidRequest(f"costmesh.routing.{key}: one of {[t.name.lower() for t in Tier]}")
            setattr(request.routing, key, int(Tier[name.upper()]))


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise InvalidRequest(f"{where}: expected an object")
    if key not in obj:
        raise InvalidRequest(f"{where}.{key}: required")
    return obj[key]


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}: must be true or false")
    return value


# -- responses ---------------------------------------------------------------------------


def extras(response: gw.CompleteResponse) -> dict[str, Any]:
    """The documented `costmesh` extension object."""
    tier = common.Tier.Name(response.tier).removeprefix("TIER_").lower() if response.tier else None
    classified = (common.Tier.Name(response.classified_tier).removeprefix("TIER_").lower()
                  if response.classified_tier else None)
    cost = response.cost
    savings = response.savings
    return {
        "request_id": response.request_id,
        "provider": response.provider,
        "cache": {"hit": response.cached, "status": CACHE_STATUS.get(response.cache_status, "unspecified"),
                  "similarity": response.cache_similarity},
        "tier": tier,
        "classified_tier": classified,
        "complexity_score": response.complexity_score,
        "attempts": response.attempts,
        "cost_usd": cost.total_usd,
        "cost": {"input_usd": cost.input_usd, "cache_read_usd": cost.cache_read_usd,
                 "cache_write_usd": cost.cache_write_usd, "output_usd": cost.output_usd,
                 "embedding_usd": cost.embedding_usd, "discount_usd": cost.discount_usd,
                 "total_usd": cost.total_usd},
        "baseline_cost_usd": response.baseline_cost_usd,
        "saving_usd": response.saving_usd,
        "savings": {"cache_usd": savings.cache_usd, "routing_usd": savings.routing_usd,
                    "prompt_caching_usd": savings.prompt_caching_usd, "batch_usd": savings.batch_usd,
                    "inference_usd": savings.inference_usd},
    }


def extra_headers(response: gw.CompleteResponse) -> dict[str, str]:
    """The same extras as `x-costmesh-*` response headers."""
    data = extras(response)
    return {
        "x-costmesh-request-id": response.request_id,
        "x-costmesh-cache": data["cache"]["status"],
        "x-costmesh-cache-hit": "true" if response.cached else "false",
        "x-costmesh-tier": data["tier"] or "",
        "x-costmesh-model": response.model,
        "x-costmesh-provider": response.provider,
        "x-costmesh-cost-usd": f"{response.cost.total_usd:.10f}",
        "x-costmesh-baseline-usd": f"{response.baseline_cost_usd:.10f}",
        "x-costmesh-saving-usd": f"{response.saving_usd:.10f}",
    }


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
    return FINISH_REASONS.get(response.finish_reason or "stop", "stop")


def completion_body(chat: ChatRequest, response: gw.CompleteResponse, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": response.model or chat.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": response.text, "refusal": None},
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
    for prefix, param in PIPELINE_PARAMS.items():
        if head == prefix or head.startswith((prefix + ".", prefix + "[")):
            return param + head[len(prefix):] if param else None
    return head
