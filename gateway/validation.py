"""Request validation: every rejection names the field at fault."""

from __future__ import annotations

from dataclasses import dataclass

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import InvalidRequest


@dataclass(frozen=True)
class Limits:
    max_prompt_bytes: int = 1_000_000
    max_messages: int = 1_000
    max_output_tokens: int = 128_000


def validate(request: gw.CompleteRequest, limits: Limits) -> None:
    if not request.tenant_id.strip():
        raise InvalidRequest("tenant_id: required")
    if not request.messages:
        raise InvalidRequest("messages: at least one message is required")
    if len(request.messages) > limits.max_messages:
        raise InvalidRequest(f"messages: {len(request.messages)} messages, at most {limits.max_messages} allowed")
    total = 0
    for i, message in enumerate(request.messages):
        if message.role not in common.Role.values() or message.role == common.ROLE_UNSPECIFIED:
            raise InvalidRequest(f"messages[{i}].role: unknown role {message.role}; use SYSTEM, USER or ASSISTANT")
        if not message.content:
            raise InvalidRequest(f"messages[{i}].content: empty")
        for j, part in enumerate(message.content):
            kind = part.WhichOneof("kind")
            if kind is None:
                raise InvalidRequest(f"messages[{i}].content[{j}]: neither text nor image")
            if kind == "text":
                total += len(part.text.encode())
            else:
                total += len(part.image.data)
    if total > limits.max_prompt_bytes:
        raise InvalidRequest(f"messages: prompt is {total} bytes, at most {limits.max_prompt_bytes} allowed")
    users = [m for m in request.messages if m.role == common.ROLE_USER]
    if not users:
        raise InvalidRequest("messages: at least one USER message is required")
    if request.messages[-1].role != common.ROLE_USER:
        raise InvalidRequest("messages: the last message must be a USER message")
    last_text = "".join(p.text for p in request.messages[-1].content if p.WhichOneof("kind") == "text")
    if not last_text.strip() and not any(p.WhichOneof("kind") == "image" for p in request.messages[-1].content):
        raise InvalidRequest(f"messages[{len(request.messages) - 1}].content: the prompt is empty")
    _validate_sampling(request, limits)
    routing = request.routing
    if routing.min_tier and routing.max_tier and routing.min_tier > routing.max_tier:
        raise InvalidRequest("routing: min_tier is above max_tier")
    if request.cache.ttl_seconds < 0:
        raise InvalidRequest("cache.ttl_seconds: must be >= 0")
    if request.cache.session_scoped and not request.session_id:
        raise InvalidRequest("session_id: required when cache.session_scoped is set")


def _validate_sampling(request: gw.CompleteRequest, limits: Limits) -> None:
    if not request.HasField("sampling"):
        return
    sampling = request.sampling
    if sampling.max_tokens <= 0:
        raise InvalidRequest("sampling.max_tokens: must be > 0")
    if sampling.max_tokens > limits.max_output_tokens:
        raise InvalidRequest(f"sampling.max_tokens: at most {limits.max_output_tokens}")
    if sampling.HasField("temperature") and not 0.0 <= sampling.temperature <= 2.0:
        raise InvalidRequest("sampling.temperature: must be within [0, 2]")
    if sampling.HasField("top_p") and not 0.0 < sampling.top_p <= 1.0:
        raise InvalidRequest("sampling.top_p: must be within (0, 1]")
