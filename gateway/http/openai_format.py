"""OpenAI Chat Completions JSON <-> the gateway's protobuf request and response.

No HTTP here. The body is checked as a whole first (`json_body.check_json`: depth, lone
surrogates), then read by its pydantic model (`openai_models.ChatCompletionRequest`): every
rejection is an `InvalidRequest` whose message starts with the OpenAI parameter at fault
(`messages[2].content`, `max_tokens`, `costmesh.cache.ttl_seconds`...). The pipeline's `validate`
then bounds every field as it does for gRPC, and `param_of` turns the fields its errors name back
into OpenAI parameters. Replies are built as the openai SDK's own types (`ChatCompletion`,
`ChatCompletionChunk`) and sent with the fields set, nulls included, as OpenAI sends them.

costmesh's own request options travel in the `costmesh` object of the body (with the OpenAI SDK:
`extra_body={"costmesh": {...}}`); costmesh's extras come back in the `costmesh` object of the
response (the last chunk when streaming).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat import chat_completion as completion
from openai.types.chat import chat_completion_chunk as chunks
from openai.types.completion_usage import PromptTokensDetails
from pydantic import ValidationError

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog
from costmesh.errors import InvalidRequest
from costmesh.gateway.http import openai_tools as tools
from costmesh.gateway.http.costmesh_options import AUTO_MODEL, extra_headers, extras
from costmesh.gateway.http.json_body import MAX_JSON_DEPTH, check_json
from costmesh.gateway.http.openai_models import KNOWN, UNKNOWN, ChatCompletionRequest
from costmesh.gateway.http.request_model import invalid_request

__all__ = ["AUTO_MODEL", "KNOWN", "MAX_JSON_DEPTH", "ChatRequest", "check_json", "chunk", "completion_body",
           "extra_headers", "extras", "finish_reason", "param_of", "parse_chat_request", "usage"]

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
    try:
        chat = ChatCompletionRequest.model_validate(body, context={"catalog": catalog})
    except ValidationError as exc:
        raise invalid_request(exc, UNKNOWN) from None
    request = gw.CompleteRequest(messages=[message.to_proto() for message in chat.messages])
    if chat.model != AUTO_MODEL:
        request.routing.model = chat.model
    request.sampling.CopyFrom(_sampling(chat))
    config = tools.tool_config(chat.tools, chat.tool_choice, chat.parallel_tool_calls)
    if config is not None:
        request.tools.CopyFrom(config)
    response_format = chat.response_format.to_proto() if chat.response_format is not None else None
    if response_format is not None:
        request.response_format.CopyFrom(response_format)
    if chat.costmesh is not None:
        chat.costmesh.apply(request)
    return ChatRequest(request, chat.model, chat.stream, chat.stream_options.include_usage)


def _sampling(chat: ChatCompletionRequest) -> common.SamplingParams:
    sampling = common.SamplingParams(max_tokens=chat.max_tokens_or_default())
    if chat.temperature is not None:
        sampling.temperature = chat.temperature
    if chat.top_p is not None:
        sampling.top_p = chat.top_p
    if chat.stop is not None:
        sampling.stop.extend([chat.stop] if isinstance(chat.stop, str) else chat.stop)
    if chat.seed is not None:
        sampling.seed = chat.seed
    return sampling


# -- responses ---------------------------------------------------------------------------


def usage(response: gw.CompleteResponse) -> CompletionUsage:
    """Tokens a model processed for this request: none when the answer came from the cache."""
    u = response.usage
    if response.cached:
        return CompletionUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0,
                               prompt_tokens_details=PromptTokensDetails(cached_tokens=0))
    return CompletionUsage(prompt_tokens=u.input_tokens, completion_tokens=u.output_tokens,
                           total_tokens=u.input_tokens + u.output_tokens,
                           prompt_tokens_details=PromptTokensDetails(cached_tokens=u.cache_read_tokens))


def finish_reason(response: gw.CompleteResponse) -> str:
    if response.tool_calls and (response.finish_reason or "tool_use") in ("stop", "tool_use"):
        return "tool_calls"
    return FINISH_REASONS.get(response.finish_reason or "stop", "stop")


def wire(model: ChatCompletion | ChatCompletionChunk) -> dict[str, Any]:
    """A reply as JSON: the fields set (nulls too, as OpenAI sends them), costmesh's extras too."""
    return model.model_dump(mode="json", exclude_unset=True)


def completion_body(chat: ChatRequest, response: gw.CompleteResponse, created: int | None = None) -> dict[str, Any]:
    if response.tool_calls:
        message = ChatCompletionMessage(role="assistant", content=response.text or None, refusal=None,
                                        tool_calls=tools.tool_calls_out(response.tool_calls))
    else:
        message = ChatCompletionMessage(role="assistant", content=response.text, refusal=None)
    return wire(ChatCompletion(
        id=f"chatcmpl-{response.request_id}",
        object="chat.completion",
        created=created or int(time.time()),
        model=response.model or chat.model,
        choices=[completion.Choice(index=0, message=message, logprobs=None, finish_reason=finish_reason(response))],
        usage=usage(response),
        system_fingerprint=None,
        costmesh=extras(response),
    ))


def chunk(request_id: str, model: str, created: int, delta: chunks.ChoiceDelta | None = None,
          finish: str | None = None, **more: Any) -> ChatCompletionChunk:
    """One `chat.completion.chunk`: one choice with `delta` (None: no choice, as the usage chunk
    has), and `more` fields (`usage`, costmesh's extras)."""
    choices = [] if delta is None else [chunks.Choice(index=0, delta=delta, logprobs=None, finish_reason=finish)]
    return ChatCompletionChunk(id=f"chatcmpl-{request_id}", object="chat.completion.chunk", created=created,
                               model=model, choices=choices, **more)


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
