"""OpenAI Chat Completions through the official `openai` SDK."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import openai

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Role, Sampling, Usage, system_prompt
from costmesh.errors import InvalidRequest, UpstreamError
from costmesh.pricing import openai_usage
from costmesh.services.providers.base import StreamEvent, priced
from costmesh.services.providers.sdk_errors import map_sdk_error

NAME = "openai"

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}

ROLES = {Role.SYSTEM: "system", Role.USER: "user", Role.ASSISTANT: "assistant"}


def finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(reason or "stop", reason or "stop")


def usage_of(usage: Any) -> Usage:
    """OpenAI's usage (SDK object or dict) -> domain Usage. `prompt_tokens` already includes cached tokens."""
    if usage is None:
        return Usage()
    return openai_usage(usage)


def prompt_cache_key(tenant_id: str, messages: tuple[Message, ...]) -> str | None:
    """A key for the stable prefix (tenant + system prompt): requests sharing it land on the same cache.

    None when there is neither: OpenAI's default routing (by the prompt's first tokens) is as good then.
    """
    system = system_prompt(messages)
    if not tenant_id and not system:
        return None
    digest = hashlib.sha256(f"{tenant_id}\x00{system}".encode()).hexdigest()
    return f"cm-{digest[:40]}"


def _content(message: Message) -> str | list[dict[str, Any]]:
    if all(part.image is None for part in message.parts):
        return message.text
    if message.role != Role.USER:
        raise InvalidRequest("messages: OpenAI takes images in user messages only")
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if part.image is None:
            content.append({"type": "text", "text": part.text or ""})
            continue
        image = part.image
        if image.data:
            url = f"data:{image.media_type or 'image/png'};base64,{base64.b64encode(image.data).decode('ascii')}"
        elif image.url:
            url = image.url
        else:
            raise InvalidRequest("messages: an image part needs data or url")
        content.append({"type": "image_url", "image_url": {"url": url}})
    return content


def build_request(
    model: ModelSpec, messages: tuple[Message, ...], sampling: Sampling, tenant_id: str = ""
) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create` (or a batch line's `body`)."""
    kwargs: dict[str, Any] = {
        "model": model.id,
        "messages": [{"role": ROLES[m.role], "content": _content(m)} for m in messages],
        "max_completion_tokens": sampling.max_tokens,
    }
    if sampling.temperature is not None:
        kwargs["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        kwargs["top_p"] = sampling.top_p
    if sampling.stop:
        kwargs["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    key = prompt_cache_key(tenant_id, messages)
    if key:
        kwargs["prompt_cache_key"] = key
    return kwargs


class OpenAIAdapter:
    """`ProviderAdapter` over `openai.AsyncOpenAI` (no SDK retries: the router retries)."""

    name = NAME

    def __init__(self, client: openai.AsyncOpenAI):
        self.client = client

    @classmethod
    def connect(cls, *, api_key: str, base_url: str | None, timeout_s: float) -> "OpenAIAdapter":
        return cls(openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s))

    @staticmethod
    def _kwargs(model, messages, sampling, tenant_id, timeout_s) -> dict[str, Any]:
        kwargs = build_request(model, messages, sampling, tenant_id)
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
            response = await self.client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, NAME, model.id) from exc
        if not response.choices:
            raise UpstreamError(f"{NAME} ({model.id}): response has no choices")
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        return priced(
            model,
            text=choice.message.content or refusal or "",
            usage=usage_of(response.usage),
            finish_reason="refusal" if refusal else finish_reason(choice.finish_reason),
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
        usage, request_id, reason, refused = Usage(), "", None, False
        try:
            chunks = await self.client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kwargs
            )
            async with chunks:
                async for chunk in chunks:
                    request_id = chunk.id or request_id
                    if chunk.usage is not None:
                        usage = usage_of(chunk.usage)
                    for choice in chunk.choices[:1]:
                        refusal = getattr(choice.delta, "refusal", None)
                        refused = refused or bool(refusal)
                        text = choice.delta.content or refusal if choice.delta else None
                        if text:
                            yield text
                        reason = choice.finish_reason or reason
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, NAME, model.id) from exc
        final_reason = "refusal" if refused else finish_reason(reason)
        yield priced(model, text="", usage=usage, finish_reason=final_reason, request_id=request_id)

    async def close(self) -> None:
        await self.client.close()
