"""Anthropic Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Part, Role, Sampling, Usage
from costmesh.errors import InvalidRequest
from costmesh.pricing import anthropic_usage
from costmesh.services.providers.base import StreamEvent, priced
from costmesh.services.providers.cache_breakpoints import (
    TTL_5M,
    AutoBreakpoints,
    BreakpointPolicy,
    ClientBreakpoints,
)
from costmesh.services.providers.sdk_errors import map_sdk_error

NAME = "anthropic"

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    "tool_use": "tool_use",
    "pause_turn": "pause",
}

EPHEMERAL = {"type": "ephemeral"}

__all__ = ["AnthropicAdapter", "AutoBreakpoints", "ClientBreakpoints", "build_request", "usage_of"]


def finish_reason(stop_reason: str | None) -> str:
    return STOP_REASONS.get(stop_reason or "end_turn", stop_reason or "stop")


def usage_from(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_input_tokens: int | None,
    cache_creation_input_tokens: int | None,
    ephemeral_1h_input_tokens: int | None = None,
) -> Usage:
    """Anthropic's usage fields -> domain Usage (through `costmesh.pricing.anthropic_usage`)."""
    return anthropic_usage(
        {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "cache_creation": {"ephemeral_1h_input_tokens": ephemeral_1h_input_tokens},
        }
    )


def usage_of(usage: Any) -> Usage:
    """From an SDK `Usage` object (a Message's, message_start's, or a batch result's) or its dict."""
    return anthropic_usage(usage)


def _block(part: Part, ttl: str | None) -> dict[str, Any]:
    if part.image is not None:
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
            raise InvalidRequest("messages: an image part needs data or url")
        block: dict[str, Any] = {"type": "image", "source": source}
    else:
        block = {"type": "text", "text": part.text or ""}
    if ttl:
        block["cache_control"] = dict(EPHEMERAL) if ttl == TTL_5M else {**EPHEMERAL, "ttl": ttl}
    return block


def build_request(
    model: ModelSpec,
    messages: tuple[Message, ...],
    sampling: Sampling,
    policy: BreakpointPolicy,
    tenant_id: str = "",
) -> dict[str, Any]:
    """Keyword arguments for `messages.create` (or a batch request's `params`): blocks with
    the policy's cache breakpoints, sampling."""
    marks = policy.place(model, messages, tenant_id)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m, message in enumerate(messages):
        blocks = [_block(part, marks.get((m, p))) for p, part in enumerate(message.parts)]
        if message.role == Role.SYSTEM:
            if any(b["type"] != "text" for b in blocks):
                raise InvalidRequest(f"messages[{m}]: a system message takes text parts only")
            system.extend(blocks)
        else:
            role = "user" if message.role == Role.USER else "assistant"
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("messages: at least one user or assistant message is required")
    kwargs: dict[str, Any] = {"model": model.id, "max_tokens": sampling.max_tokens, "messages": turns}
    if system:
        kwargs["system"] = system
    if sampling.stop:
        kwargs["stop_sequences"] = list(sampling.stop)
    extra: dict[str, Any] = {}  # the SDK no longer types these; the API still takes them
    if sampling.temperature is not None:
        extra["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        extra["top_p"] = sampling.top_p
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


class AnthropicAdapter:
    """`ProviderAdapter` over `anthropic.AsyncAnthropic` (no SDK retries: the router retries)."""

    name = NAME

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        breakpoints: BreakpointPolicy | None = None,
    ):
        self.client = client
        self.breakpoints = breakpoints or AutoBreakpoints()

    @classmethod
    def connect(
        cls, *, api_key: str, base_url: str | None, timeout_s: float, breakpoints: BreakpointPolicy | None = None
    ) -> "AnthropicAdapter":
        client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s)
        return cls(client, breakpoints)

    def _kwargs(self, model, messages, sampling, tenant_id, timeout_s) -> dict[str, Any]:
        kwargs = build_request(model, messages, sampling, self.breakpoints, tenant_id)
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        return kwargs

    async def generate(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        timeout_s: float | None = None,
    ) -> Generation:
        kwargs = self._kwargs(model, messages, sampling, tenant_id, timeout_s)
        try:
            response = await self.client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, NAME, model.id) from exc
        text = "".join(block.text for block in response.content if block.type == "text")
        return priced(
            model,
            text=text,
            usage=usage_of(response.usage),
            finish_reason=finish_reason(response.stop_reason),
            request_id=response.id,
        )

    async def stream(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        kwargs = self._kwargs(model, messages, sampling, tenant_id, timeout_s)
        usage = Usage()
        request_id, stop_reason = "", None
        try:
            events = await self.client.messages.create(stream=True, **kwargs)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        request_id = event.message.id
                        usage = usage_of(event.message.usage)
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield event.delta.text
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        usage = _merge_delta(usage, event.usage)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, NAME, model.id) from exc
        yield priced(model, text="", usage=usage, finish_reason=finish_reason(stop_reason), request_id=request_id)

    async def close(self) -> None:
        await self.client.close()


def _merge_delta(start: Usage, delta: Any) -> Usage:
    """message_delta usage counts are cumulative; its input fields, when present, replace message_start's."""
    read = delta.cache_read_input_tokens
    write = delta.cache_creation_input_tokens
    uncached = start.input_tokens - start.cache_read_tokens - start.cache_write_tokens
    return usage_from(
        input_tokens=delta.input_tokens if delta.input_tokens is not None else uncached,
        output_tokens=delta.output_tokens,
        cache_read_input_tokens=read if read is not None else start.cache_read_tokens,
        cache_creation_input_tokens=write if write is not None else start.cache_write_tokens,
        ephemeral_1h_input_tokens=start.cache_write_1h_tokens,
    )
