"""Anthropic Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anthropic

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling, ToolCall, Usage
from costmesh.errors import InvalidRequest
from costmesh.output_spec import ChoiceMode, OutputSpec, Tool
from costmesh.pricing import anthropic_usage
from costmesh.services.providers import anthropic_structured_output as structured_output
from costmesh.services.providers.anthropic_content import (
    TOOLS,
    Block,
    offered_tools,
    prompt,
    tenant_scoped,
    tool_param,
)
from costmesh.services.providers.base import StreamEvent, priced
from costmesh.services.providers.cache_breakpoints import (
    TTL_5M,
    AutoBreakpoints,
    Breakpoint,
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
PLAIN = OutputSpec()

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


def _cache_control(ttl: str) -> dict[str, str]:
    return dict(EPHEMERAL) if ttl == TTL_5M else {**EPHEMERAL, "ttl": ttl}


def _marked(block: Block, marks: Mapping[Breakpoint, str]) -> dict[str, Any]:
    ttl = marks.get(block.key)
    return {**block.body, "cache_control": _cache_control(ttl)} if ttl else dict(block.body)


def tool_choice(output: OutputSpec, tools: tuple[Tool, ...]) -> dict[str, Any] | None:
    """Anthropic's tool_choice, None for its default (auto, parallel calls allowed)."""
    if not tools:
        return None
    if not output.tools:  # definitions only for the conversation's own calls: no new call
        return {"type": "none"}
    mode = output.choice.mode
    if mode == ChoiceMode.NONE:
        return {"type": "none"}
    choice: dict[str, Any] = (
        {"type": "any"} if mode == ChoiceMode.REQUIRED
        else {"type": "tool", "name": output.choice.name} if mode == ChoiceMode.TOOL
        else {"type": "auto"}
    )
    if output.parallel_tool_calls is False:
        choice["disable_parallel_tool_use"] = True
    elif mode == ChoiceMode.AUTO:
        return None
    return choice


def build_request(
    model: ModelSpec,
    messages: tuple[Message, ...],
    sampling: Sampling,
    policy: BreakpointPolicy,
    tenant_id: str = "",
    output: OutputSpec = PLAIN,
    *,
    prefill: bool = True,
    tenant_isolation: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `messages.create` (or a batch request's `params`, `prefill` False):
    tools, system and turns as blocks (`anthropic_content`) with the policy's cache breakpoints,
    the tool choice, the output format (`anthropic_structured_output`), sampling.

    `tenant_isolation`: the prompt starts its system part with the tenant's scope block
    (`tenant_scoped`), so no other tenant reads its prompt-cache entries; breakpoints on tool
    definitions (a prefix before that block) are dropped."""
    if tenant_isolation:
        messages = tenant_scoped(messages, tenant_id)
    tools = offered_tools(output, messages)
    marks = policy.place(model, messages, tenant_id, tools)
    if tenant_isolation:
        marks = {at: ttl for at, ttl in marks.items() if at[0] != TOOLS}
    system_blocks, turns = prompt(messages)
    if not turns:
        raise InvalidRequest("messages: at least one user or assistant message is required")
    kwargs: dict[str, Any] = {
        "model": model.id,
        "max_tokens": sampling.max_tokens,
        "messages": [{"role": t.role, "content": [_marked(b, marks) for b in t.blocks]} for t in turns],
    }
    if tools:
        params = [tool_param(tool) for tool in tools]
        for t, param in enumerate(params):
            if (TOOLS, t) in marks:
                param["cache_control"] = _cache_control(marks[(TOOLS, t)])
        kwargs["tools"] = params
        choice = tool_choice(output, tools)
        if choice is not None:
            kwargs["tool_choice"] = choice
    system = [_marked(b, marks) for b in system_blocks]
    structured_output.apply(kwargs, system, output, structured_output.prefill(output, messages) if prefill else "")
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


def answer_of(content: Any) -> tuple[str, tuple[ToolCall, ...]]:
    """A Message's content blocks (SDK objects or dicts) -> its text and its tool calls."""
    texts, calls = [], []
    for block in content:
        kind = _field(block, "type")
        if kind == "text":
            texts.append(_field(block, "text"))
        elif kind == "tool_use":
            calls.append(ToolCall(_field(block, "id"), _field(block, "name"), _arguments(_field(block, "input"))))
    return "".join(texts), tuple(calls)


def _arguments(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _field(block: Any, name: str) -> Any:
    return block.get(name) if isinstance(block, Mapping) else getattr(block, name)


class AnthropicAdapter:
    """`ProviderAdapter` over `anthropic.AsyncAnthropic` (no SDK retries: the router retries)."""

    name = NAME

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        breakpoints: BreakpointPolicy | None = None,
        *,
        tenant_isolation: bool = False,
    ):
        """`tenant_isolation`: each tenant's prompt-cache entries its own (`build_request`); the
        providers service turns it on unless COSTMESH_PROMPT_CACHE_ISOLATION=off."""
        self.client = client
        self.breakpoints = breakpoints or AutoBreakpoints()
        self.tenant_isolation = tenant_isolation

    @classmethod
    def connect(
        cls, *, api_key: str, base_url: str | None, timeout_s: float, breakpoints: BreakpointPolicy | None = None,
        tenant_isolation: bool = True, aiohttp: bool = False,
    ) -> "AnthropicAdapter":
        """`aiohttp`: the SDK over aiohttp (`anthropic.DefaultAioHttpClient`) instead of httpx."""
        http_client = anthropic.DefaultAioHttpClient(timeout=timeout_s) if aiohttp else None
        client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s,
                                          http_client=http_client)
        return cls(client, breakpoints, tenant_isolation=tenant_isolation)

    def _kwargs(self, model, messages, sampling, tenant_id, output, timeout_s) -> dict[str, Any]:
        kwargs = build_request(model, messages, sampling, self.breakpoints, tenant_id, output,
                               tenant_isolation=self.tenant_isolation)
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
        output: OutputSpec = PLAIN,
        timeout_s: float | None = None,
    ) -> Generation:
        kwargs = self._kwargs(model, messages, sampling, tenant_id, output, timeout_s)
        try:
            response = await self.client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, NAME, model.id) from exc
        text, tool_calls = answer_of(response.content)
        return priced(
            model,
            text=structured_output.with_prefill(structured_output.prefill(output, messages), text),
            usage=usage_of(response.usage),
            finish_reason=finish_reason(response.stop_reason),
            request_id=response.id,
            tool_calls=tool_calls,
        )

    async def stream(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        output: OutputSpec = PLAIN,
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        kwargs = self._kwargs(model, messages, sampling, tenant_id, output, timeout_s)
        text = structured_output.PrefilledStream(structured_output.prefill(output, messages))
        calls = ToolCallAssembler()
        usage = Usage()
        request_id, stop_reason = "", None
        try:
            events = await self.client.messages.create(stream=True, **kwargs)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        request_id = event.message.id
                        usage = usage_of(event.message.usage)
                    elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                        calls.start(event.index, event.content_block)
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        delta = text.feed(event.delta.text)
                        if delta:
                            yield delta
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                        calls.extend(event.index, event.delta.partial_json)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        usage = _merge_delta(usage, event.usage)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, NAME, model.id) from exc
        rest = text.flush()
        if rest:
            yield rest
        yield priced(model, text="", usage=usage, finish_reason=finish_reason(stop_reason), request_id=request_id,
                     tool_calls=calls.calls())

    async def close(self) -> None:
        await self.client.close()


class ToolCallAssembler:
    """A stream's tool_use blocks: each opened by `content_block_start` (id, name, and an input
    that is `{}` when streamed) and filled by `input_json_delta` pieces, per block index."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, str, Any]] = {}
        self._pieces: dict[int, list[str]] = {}

    def start(self, index: int, block: Any) -> None:
        self._calls[index] = (block.id, block.name, getattr(block, "input", None))
        self._pieces[index] = []

    def extend(self, index: int, partial_json: str) -> None:
        if index in self._pieces and partial_json:
            self._pieces[index].append(partial_json)

    def calls(self) -> tuple[ToolCall, ...]:
        out = []
        for index in sorted(self._calls):
            call_id, name, start_input = self._calls[index]
            streamed = "".join(self._pieces[index])
            try:  # written as a non-streamed answer's input is, when it parses
                value = json.loads(streamed) if streamed else (start_input or {})
            except (ValueError, RecursionError):
                out.append(ToolCall(call_id, name, streamed))
                continue
            out.append(ToolCall(call_id, name, _arguments(value)))
        return tuple(out)


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
