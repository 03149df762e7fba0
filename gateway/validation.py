"""Request validation: every field bounded, every rejection names the field at fault.

`validate` runs on every request the gateway takes (gRPC, HTTP, batch) before anything is
looked up, called or billed. An `InvalidRequest("field: what is wrong")` becomes
`INVALID_ARGUMENT` over gRPC, with a `google.rpc.BadRequest` detail naming the field
(`costmesh.rpc.status`), and a 400 naming `param` over HTTP. Messages never echo a
value back (it may be huge, or a prompt).
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

from pydantic import Field, field_validator

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.convert import messages_from_pb, output_spec_from_pb
from costmesh.errors import InvalidRequest
from costmesh.observability.log_context import MAX_REQUEST_ID_CHARS, REQUEST_ID_CHARS
from costmesh.output_spec import check_conversation
from costmesh.settings import CommaList, Settings, SkipEnv, split_commas

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Limits(Settings):
    """Bounds on a `CompleteRequest`. The defaults are the documented ones (README, "Input limits");
    those an operator may change are read from `COSTMESH_MAX_*` and `COSTMESH_IMAGE_URL_SCHEMES`."""

    used_by: ClassVar[str] = "gateway"

    max_prompt_bytes: int = Field(1_000_000, ge=1, description="a request's text, image bytes and image URLs, "
                                  "all messages together")
    max_messages: int = Field(1_000, ge=1, description="messages in one request")
    max_output_tokens: int = Field(128_000, ge=1, description="a request's `max_tokens`")
    max_tags: int = Field(64, ge=0, description="cache tags of one request")
    max_ttl_seconds: int = Field(30 * 24 * 3600, ge=1, validation_alias="COSTMESH_MAX_TTL_S",
                                 description="a request's cache `ttl_seconds`")
    image_url_schemes: CommaList = Field(("data",), description="image URL schemes accepted, comma-separated "
                                         "(add `https` to let providers fetch images; `data:` URLs count as "
                                         "prompt bytes)")
    # Fixed bounds (not read from the environment):
    max_parts_per_message: SkipEnv[int] = 1_000
    max_stop_sequences: SkipEnv[int] = 16  # sampling.stop (the HTTP API takes OpenAI's 4)
    max_stop_bytes: SkipEnv[int] = 256  # each stop sequence, UTF-8
    max_tag_bytes: SkipEnv[int] = 256  # each tag, UTF-8
    max_tenant_id_bytes: SkipEnv[int] = 256
    max_session_id_bytes: SkipEnv[int] = 256
    max_request_id_chars: SkipEnv[int] = MAX_REQUEST_ID_CHARS  # and only REQUEST_ID_CHARS: always a valid header
    max_model_chars: SkipEnv[int] = 128  # routing.model
    max_image_url_chars: SkipEnv[int] = 2_048  # a URL other than data: (data: URLs count as prompt bytes)
    image_media_types: SkipEnv[tuple[str, ...]] = ("image/png", "image/jpeg", "image/gif", "image/webp")

    @field_validator("image_url_schemes", mode="before")
    @classmethod
    def _schemes(cls, value: object) -> object:
        value = split_commas(value)
        if isinstance(value, tuple | list):
            return tuple(s.strip().lower().removesuffix(":") for s in value if s.strip())
        return value


def validate(request: gw.CompleteRequest, limits: Limits) -> None:
    _validate_ids(request, limits)
    _validate_messages(request, limits)
    _validate_tools(request, limits)
    _validate_sampling(request, limits)
    _validate_routing(request.routing, limits)
    _validate_cache(request, limits)


def _validate_ids(request: gw.CompleteRequest, limits: Limits) -> None:
    if not request.tenant_id.strip():
        raise InvalidRequest("tenant_id: required")
    _bounded_text(request.tenant_id, "tenant_id", limits.max_tenant_id_bytes)
    rid = request.request_id
    if rid:
        if len(rid) > limits.max_request_id_chars:
            raise InvalidRequest(f"request_id: {len(rid)} characters, at most {limits.max_request_id_chars} allowed")
        if not REQUEST_ID_CHARS.fullmatch(rid):
            raise InvalidRequest("request_id: only letters, digits and . _ : - are allowed")
    if request.session_id:
        _bounded_text(request.session_id, "session_id", limits.max_session_id_bytes)


def _validate_messages(request: gw.CompleteRequest, limits: Limits) -> None:
    if not request.messages:
        raise InvalidRequest("messages: at least one message is required")
    if len(request.messages) > limits.max_messages:
        raise InvalidRequest(f"messages: {len(request.messages)} messages, at most {limits.max_messages} allowed")
    total = 0
    for i, message in enumerate(request.messages):
        if message.role not in common.Role.values() or message.role == common.ROLE_UNSPECIFIED:
            raise InvalidRequest(f"messages[{i}].role: unknown role {message.role}; "
                                 "use SYSTEM, USER, ASSISTANT or TOOL")
        if not message.content and not message.tool_calls and message.role != common.ROLE_TOOL:
            raise InvalidRequest(f"messages[{i}].content: empty")
        for call in message.tool_calls:
            total += len(call.arguments_json.encode()) + len(call.name) + len(call.id)
        if len(message.content) > limits.max_parts_per_message:
            raise InvalidRequest(f"messages[{i}].content: {len(message.content)} parts, "
                                 f"at most {limits.max_parts_per_message} allowed")
        for j, part in enumerate(message.content):
            kind = part.WhichOneof("kind")
            if kind is None:
                raise InvalidRequest(f"messages[{i}].content[{j}]: neither text nor image")
            if kind == "text":
                total += len(part.text.encode())
            else:
                total += _image_bytes(part.image, f"messages[{i}].content[{j}].image", limits)
            if total > limits.max_prompt_bytes:
                raise InvalidRequest(f"messages: prompt is over {limits.max_prompt_bytes} bytes, the most allowed")
    users = [m for m in request.messages if m.role == common.ROLE_USER]
    if not users:
        raise InvalidRequest("messages: at least one USER message is required")
    if request.messages[-1].role not in (common.ROLE_USER, common.ROLE_TOOL):
        raise InvalidRequest("messages: the last message must be a USER message or a TOOL result")
    if request.messages[-1].role == common.ROLE_TOOL:
        return
    last_text = "".join(p.text for p in request.messages[-1].content if p.WhichOneof("kind") == "text")
    if not last_text.strip() and not any(p.WhichOneof("kind") == "image" for p in request.messages[-1].content):
        raise InvalidRequest(f"messages[{len(request.messages) - 1}].content: the prompt is empty")


def _validate_tools(request: gw.CompleteRequest, limits: Limits) -> None:
    """Tools and format well-formed (schemas checked against their metaschema), tool results
    answering earlier calls, and the tools' definitions within the prompt's size."""
    size = sum(len(t.parameters_json.encode()) + len(t.description.encode()) for t in request.tools.tools)
    size += len(request.response_format.schema_json.encode())
    if size > limits.max_prompt_bytes:
        raise InvalidRequest(f"tools: definitions are over {limits.max_prompt_bytes} bytes, the most allowed")
    output_spec_from_pb(request.tools, request.response_format)
    check_conversation(messages_from_pb(request.messages))


def _image_bytes(image: common.Image, where: str, limits: Limits) -> int:
    """Checks one image (media type, URL scheme) and returns what it adds to the prompt's size."""
    if image.data and image.url:
        raise InvalidRequest(f"{where}: set data or url, not both")
    if not image.data and not image.url:
        raise InvalidRequest(f"{where}: data or url is required")
    if image.media_type and image.media_type not in limits.image_media_types:  # unset: image/png
        raise InvalidRequest(f"{where}.media_type: one of {', '.join(limits.image_media_types)}")
    if image.data:
        return len(image.data)
    url = image.url
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in limits.image_url_schemes:
        allowed = ", ".join(f"{s}:" for s in limits.image_url_schemes) or "none"
        raise InvalidRequest(f"{where}.url: scheme not allowed (allowed: {allowed})")
    if scheme == "data":
        media_type = rest.partition(",")[0].partition(";")[0].lower()
        if media_type not in limits.image_media_types:
            raise InvalidRequest(f"{where}.url: a data URL of one of {', '.join(limits.image_media_types)}")
    elif len(url) > limits.max_image_url_chars:
        raise InvalidRequest(f"{where}.url: {len(url)} characters, at most {limits.max_image_url_chars} allowed")
    elif _CONTROL.search(url) or not url.isascii():
        raise InvalidRequest(f"{where}.url: control or non-ASCII characters")
    return len(url)


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
    if sampling.HasField("top_p") and not (0.0 < sampling.top_p <= 1.0 and math.isfinite(sampling.top_p)):
        raise InvalidRequest("sampling.top_p: must be within (0, 1]")
    if len(sampling.stop) > limits.max_stop_sequences:
        raise InvalidRequest(f"sampling.stop: {len(sampling.stop)} sequences, at most {limits.max_stop_sequences}")
    for i, stop in enumerate(sampling.stop):
        if not stop:
            raise InvalidRequest(f"sampling.stop[{i}]: empty")
        if len(stop.encode()) > limits.max_stop_bytes:
            raise InvalidRequest(f"sampling.stop[{i}]: longer than {limits.max_stop_bytes} bytes")


def _validate_routing(routing: gw.RoutingPolicy, limits: Limits) -> None:
    for name in ("min_tier", "max_tier"):
        if getattr(routing, name) not in common.Tier.values():
            raise InvalidRequest(f"routing.{name}: unknown tier {getattr(routing, name)}")
    if routing.min_tier and routing.max_tier and routing.min_tier > routing.max_tier:
        raise InvalidRequest("routing: min_tier is above max_tier")
    if routing.model:
        _bounded_text(routing.model, "routing.model", limits.max_model_chars)


def _validate_cache(request: gw.CompleteRequest, limits: Limits) -> None:
    cache = request.cache
    if cache.ttl_seconds < 0:
        raise InvalidRequest("cache.ttl_seconds: must be >= 0")
    if cache.ttl_seconds > limits.max_ttl_seconds:
        raise InvalidRequest(f"cache.ttl_seconds: at most {limits.max_ttl_seconds}")
    if len(cache.tags) > limits.max_tags:
        raise InvalidRequest(f"cache.tags: {len(cache.tags)} tags, at most {limits.max_tags} allowed")
    for i, tag in enumerate(cache.tags):
        if not tag:
            raise InvalidRequest(f"cache.tags[{i}]: empty")
        _bounded_text(tag, f"cache.tags[{i}]", limits.max_tag_bytes)
    if cache.session_scoped and not request.session_id:
        raise InvalidRequest("session_id: required when cache.session_scoped is set")


def _bounded_text(value: str, where: str, max_bytes: int) -> None:
    if len(value) > max_bytes or len(value.encode()) > max_bytes:
        raise InvalidRequest(f"{where}: longer than {max_bytes} bytes")
    if _CONTROL.search(value):
        raise InvalidRequest(f"{where}: control characters are not allowed")
