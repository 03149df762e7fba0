"""What to ask: a typed request, turned into the gateway's protobuf."""

from __future__ import annotations

import functools
import json
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier
from costmesh.errors import InvalidRequest
from costmesh.vocabulary import parse_tier

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = {"system": common.ROLE_SYSTEM, "user": common.ROLE_USER, "assistant": common.ROLE_ASSISTANT,
          "tool": common.ROLE_TOOL}
_CHOICES = {"auto": common.TOOL_CHOICE_MODE_AUTO, "none": common.TOOL_CHOICE_MODE_NONE,
            "required": common.TOOL_CHOICE_MODE_REQUIRED}


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for; `arguments` is its JSON text."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; `parameters` is a JSON Schema of an object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True)
class ChatMessage:
    """`tool_calls` on an assistant message; a "tool" message is the result of the call `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str = ""


@dataclass(frozen=True)
class CompletionRequest:
    """A conversation and how to answer it. `prompt`/`system` are shorthands for `messages`."""

    prompt: str = ""
    system: str = ""
    messages: Sequence[ChatMessage] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stop: Sequence[str] = ()
    seed: int | None = None
    model: str = ""                   # pin one catalog model: no classification, no cascade
    min_tier: Tier | str | None = None  # a Tier or its name: "trivial", "simple", "moderate", "complex"
    max_tier: Tier | str | None = None
    bypass: bool = False              # neither read nor write the cache (HTTP: costmesh.cache.bypass)
    ttl_seconds: int = 0              # how long the answer stays cached; 0: the cache's default
    tags: Sequence[str] = ()          # cache tags, for event-driven invalidation
    session_id: str = ""
    session_scoped: bool = False      # share cached answers only within session_id
    request_id: str = ""              # generated when empty; kept across retries
    tools: Sequence[ToolSpec] = ()
    tool_choice: str = "auto"         # auto | none | required | the name of a tool that must be called
    parallel_tool_calls: bool | None = None
    json_schema: Mapping[str, Any] | None = None  # answer JSON that validates against it
    json_object: bool = False         # answer a JSON object (any shape)
    semantic_tool_answers: bool = False  # let the semantic tier serve tool-calling answers too

    def to_pb(self) -> gw.CompleteRequest:
        messages = []
        if self.system:
            messages.append(common.Message(role=common.ROLE_SYSTEM, content=[common.ContentPart(text=self.system)]))
        for m in self.messages:
            if m.role not in _ROLES:
                raise InvalidRequest(f"messages: unknown role {m.role!r}; use system, user or assistant")
            message = common.Message(role=_ROLES[m.role], tool_call_id=m.tool_call_id,
                                     tool_calls=[common.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments)
                                                 for c in m.tool_calls])
            if m.content or not m.tool_calls:
                message.content.add(text=m.content)
            messages.append(message)
        if self.prompt:
            messages.append(common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=self.prompt)]))
        sampling = common.SamplingParams(max_tokens=self.max_tokens, stop=list(self.stop))
        if self.temperature is not None:
            sampling.temperature = self.temperature
        if self.top_p is not None:
            sampling.top_p = self.top_p
        if self.seed is not None:
            sampling.seed = self.seed
        return gw.CompleteRequest(
            messages=messages,
            sampling=sampling,
            cache=gw.CachePolicy(bypass=self.bypass, ttl_seconds=self.ttl_seconds, tags=list(self.tags),
                                 session_scoped=self.session_scoped, semantic_tool_answers=self.semantic_tool_answers),
            routing=gw.RoutingPolicy(model=self.model, min_tier=int(parse_tier(self.min_tier, "min_tier") or 0),
                                     max_tier=int(parse_tier(self.max_tier, "max_tier") or 0)),
            request_id=self.request_id or uuid.uuid4().hex,
            session_id=self.session_id,
            tools=self._tools_pb(),
            response_format=self._format_pb(),
        )

    def _tools_pb(self) -> common.ToolConfig:
        if not self.tools:
            return common.ToolConfig()
        config = common.ToolConfig(tools=[
            common.Tool(name=t.name, description=t.description, strict=t.strict,
                        parameters_json=json.dumps(t.parameters) if t.parameters is not None else "")
            for t in self.tools
        ])
        if self.tool_choice in _CHOICES:
            config.choice.mode = _CHOICES[self.tool_choice]
        else:
            config.choice.mode, config.choice.name = common.TOOL_CHOICE_MODE_TOOL, self.tool_choice
        if self.parallel_tool_calls is not None:
            config.parallel_tool_calls = self.parallel_tool_calls
        return config

    def _format_pb(self) -> common.ResponseFormat:
        if self.json_schema is not None:
            return common.ResponseFormat(type=common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="answer",
                                         schema_json=json.dumps(self.json_schema), strict=True)
        if self.json_object:
            return common.ResponseFormat(type=common.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
        return common.ResponseFormat()


# The names these options had before they took the HTTP API's (`costmesh.cache.bypass`...):
# still accepted, with a DeprecationWarning.
DEPRECATED_OPTIONS = {"cache_bypass": "bypass", "cache_ttl_s": "ttl_seconds", "cache_tags": "tags"}


def _renamed(options: dict[str, Any], stacklevel: int) -> dict[str, Any]:
    for old, new in DEPRECATED_OPTIONS.items():
        if old in options:
            warnings.warn(f"{old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=stacklevel + 1)
            if new in options:
                raise TypeError(f"give {new!r} only, not {old!r} as well")
            options[new] = options.pop(old)
    return options


_fields_init = CompletionRequest.__init__


@functools.wraps(_fields_init)
def _init(self, *args, **kwargs) -> None:
    _fields_init(self, *args, **_renamed(kwargs, 2))


def _deprecated_alias(old: str, new: str) -> property:
    def read(self):
        warnings.warn(f"{old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(read, doc=f"Deprecated: `{new}`.")


CompletionRequest.__init__ = _init
for _old, _new in DEPRECATED_OPTIONS.items():
    setattr(CompletionRequest, _old, _deprecated_alias(_old, _new))


def as_request(prompt_or_request: str | CompletionRequest, **options) -> CompletionRequest:
    options = _renamed(options, 3)  # the caller of complete()/stream()
    if isinstance(prompt_or_request, CompletionRequest):
        if options:
            return replace(prompt_or_request, **options)
        return prompt_or_request
    return CompletionRequest(prompt=prompt_or_request, **options)
