"""OpenAI Chat Completions through the official `openai` SDK."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Role, Sampling, ToolCall, Usage, system_prompt
from costmesh.errors import InvalidRequest, UpstreamError
from costmesh.output_spec import ChoiceMode, FormatType, OutputSpec, Tool
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

ROLES = {Role.SYSTEM: "system", Role.USER: "user", Role.ASSISTANT: "assistant", Role.TOOL: "tool"}
MAX_CALL_ID_CHARS = 40  # OpenAI refuses a longer tool call id
TOOL_ERROR_PREFIX = "Error: "  # a failed tool's result (OpenAI has no is_error)
PLAIN = OutputSpec()
# OpenAI's JSON mode refuses a conversation that never says "json"; one that does not gets this
# (last, so the cached prefix is unchanged).
JSON_INSTRUCTION = "Answer with a single JSON object."


def finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(reason or "stop", reason or "stop")


def usage_of(usage: Any) -> Usage:
    """OpenAI's usage (SDK object or dict) -> domain Usage. `prompt_tokens` already includes cached tokens."""
    if usage is None:
        return Usage()
    return openai_usage(usage)


def prompt_cache_key(tenant_id: str, messages: tuple[Message, ...], output: OutputSpec = PLAIN) -> str | None:
    """A key for the stable prefix (tenant + tool definitions and format + system prompt):
    requests sharing it land on the same cache. The tools are part of OpenAI's cached prefix
    (they come before the messages), so requests offering other tools share nothing.

    None when there is none of these: OpenAI's default routing (by the prompt's first tokens) is
    as good then.
    """
    system = system_prompt(messages)
    tools = output.digest()
    if not tenant_id and not system and not tools:
        return None
    key = f"{tenant_id}\x00{system}" + (f"\x00{tools}" if tools else "")  # plain: the key it always had
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"cm-{digest[:40]}"


def call_id(value: str) -> str:
    """A tool call id as OpenAI takes it (at most 40 characters); a longer one maps to a stable
    digest, the same for the call and its result."""
    if len(value) <= MAX_CALL_ID_CHARS:
        return value
    return "call_" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _content(message: Message, m: int) -> str | list[dict[str, Any]]:
    if all(part.image is None for part in message.parts):
        return message.text
    if message.role != Role.USER:
        raise InvalidRequest(f"messages[{m}].content: OpenAI takes images in user messages only")
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
            raise InvalidRequest(f"messages[{m}]: an image part needs data or url")
        content.append({"type": "image_url", "image_url": {"url": url}})
    return content


def message_param(message: Message, m: int) -> dict[str, Any]:
    """One domain message as a Chat Completions message."""
    if message.role == Role.TOOL:
        text = _content(message, m)
        return {"role": "tool", "tool_call_id": call_id(message.tool_call_id),
                "content": f"{TOOL_ERROR_PREFIX}{text}" if message.is_error else text}
    out: dict[str, Any] = {"role": ROLES[message.role], "content": _content(message, m)}
    if message.tool_calls:
        out["content"] = out["content"] or None  # an assistant turn that only calls tools
        out["tool_calls"] = [
            {"id": call_id(c.id), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def tool_param(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice(output: OutputSpec) -> str | dict[str, Any] | None:
    """Chat Completions' tool_choice; None for its default ("auto")."""
    mode = output.choice.mode
    if mode == ChoiceMode.NONE:
        return "none"
    if mode == ChoiceMode.REQUIRED:
        return "required"
    if mode == ChoiceMode.TOOL:
        return {"type": "function", "function": {"name": output.choice.name}}
    return None


def response_format(output: OutputSpec) -> dict[str, Any] | None:
    """OpenAI's native JSON mode or Structured Outputs; None for free text."""
    fmt = output.response_format
    if fmt.type == FormatType.JSON_OBJECT:
        return {"type": "json_object"}
    if fmt.type == FormatType.JSON_SCHEMA and fmt.schema is not None:
        return {"type": "json_schema",
                "json_schema": {"name": fmt.name or "response", "schema": dict(fmt.schema), "strict": fmt.strict}}
    return None


def build_request(
    model: ModelSpec,
    messages: tuple[Message, ...],
    sampling: Sampling,
    tenant_id: str = "",
    output: OutputSpec = PLAIN,
) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create` (or a batch line's `body`)."""
    kwargs: dict[str, Any] = {
        "model": model.id,
        "messages": [message_param(m, i) for i, m in enumerate(messages)],
        "max_completion_tokens": sampling.max_tokens,
    }
    if output.tools:
        kwargs["tools"] = [tool_param(tool) for tool in output.tools]
        choice = tool_choice(output)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if output.parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = output.parallel_tool_calls
    fmt = response_format(output)
    if fmt is not None:
        kwargs["response_format"] = fmt
        if fmt["type"] == "json_object" and not any("json" in m.text.lower() for m in messages):
            kwargs["messages"].append({"role": "system", "content": JSON_INSTRUCTION})
    if sampling.temperature is not None:
        kwargs["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        kwargs["top_p"] = sampling.top_p
    if sampling.stop:
        kwargs["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    key = prompt_cache_key(tenant_id, messages, output)
    if key:
        kwargs["prompt_cache_key"] = key
    return kwargs


def tool_calls_of(message: Any) -> tuple[ToolCall, ...]:
    """An answer's function calls (from an SDK message or a batch line's dict), in order."""
    calls = (message.get("tool_calls") if isinstance(message, Mapping) else getattr(message, "tool_calls", None))
    out = []
    for call in calls or ():
        if _field(call, "type") != "function":  # custom tools are not offered
            continue
        function = _field(call, "function")
        out.append(ToolCall(_field(call, "id"), _field(function, "name"), _field(function, "arguments") or ""))
    return tuple(out)


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


class ToolCallAssembler:
    """A stream's `delta.tool_calls` pieces, per call index: the first carries the id and name,
    the following ones more of the arguments."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]

    def add(self, pieces: Any) -> None:
        for piece in pieces or ():
            call = self._calls.setdefault(piece.index, ["", "", ""])
            call[0] = piece.id or call[0]
            function = piece.function
            if function is not None:
                call[1] = function.name or call[1]
                call[2] += function.arguments or ""

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(*self._calls[i]) for i in sorted(self._calls))


class OpenAIAdapter:
    """`ProviderAdapter` over `openai.AsyncOpenAI` (no SDK retries: the router retries)."""

    name = NAME

    def __init__(self, client: openai.AsyncOpenAI):
        self.client = client

    @classmethod
    def connect(cls, *, api_key: str, base_url: str | None, timeout_s: float, aiohttp: bool = False) -> "OpenAIAdapter":
        """`aiohttp`: the SDK over aiohttp (`openai.DefaultAioHttpClient`) instead of httpx."""
        http_client = openai.DefaultAioHttpClient(timeout=timeout_s) if aiohttp else None
        return cls(openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s,
                                      http_client=http_client))

    @staticmethod
    def _kwargs(model, messages, sampling, tenant_id, output, timeout_s) -> dict[str, Any]:
        kwargs = build_request(model, messages, sampling, tenant_id, output)
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
            tool_calls=tool_calls_of(choice.message),
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
        usage, request_id, reason, refused = Usage(), "", None, False
        calls = ToolCallAssembler()
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
                        delta = choice.delta
                        refusal = getattr(delta, "refusal", None)
                        refused = refused or bool(refusal)
                        text = delta.content or refusal if delta else None
                        if text:
                            yield text
                        if delta is not None:
                            calls.add(delta.tool_calls)
                        reason = choice.finish_reason or reason
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, NAME, model.id) from exc
        final_reason = "refusal" if refused else finish_reason(reason)
        yield priced(model, text="", usage=usage, finish_reason=final_reason, request_id=request_id,
                     tool_calls=calls.calls())

    async def close(self) -> None:
        await self.client.close()
