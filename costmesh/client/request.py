"""What to ask: a typed request, turned into the gateway's protobuf."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier
from costmesh.errors import InvalidRequest

Role = Literal["system", "user", "assistant"]
_ROLES = {"system": common.ROLE_SYSTEM, "user": common.ROLE_USER, "assistant": common.ROLE_ASSISTANT}


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


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
    min_tier: Tier | None = None
    max_tier: Tier | None = None
    cache_bypass: bool = False
    cache_ttl_s: int = 0              # 0: the cache's default
    cache_tags: Sequence[str] = ()    # for event-driven invalidation
    session_id: str = ""
    session_scoped: bool = False      # share cached answers only within session_id
    request_id: str = ""              # generated when empty; kept across retries

    def to_pb(self) -> gw.CompleteRequest:
        messages = []
        if self.system:
            messages.append(common.Message(role=common.ROLE_SYSTEM, content=[common.ContentPart(text=self.system)]))
        for m in self.messages:
            if m.role not in _ROLES:
                raise InvalidRequest(f"messages: unknown role {m.role!r}; use system, user or assistant")
            messages.append(common.Message(role=_ROLES[m.role], content=[common.ContentPart(text=m.content)]))
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
            cache=gw.CachePolicy(bypass=self.cache_bypass, ttl_seconds=self.cache_ttl_s, tags=list(self.cache_tags),
                                 session_scoped=self.session_scoped),
            routing=gw.RoutingPolicy(model=self.model, min_tier=int(self.min_tier or 0),
                                     max_tier=int(self.max_tier or 0)),
            request_id=self.request_id or uuid.uuid4().hex,
            session_id=self.session_id,
        )


def as_request(prompt_or_request: str | CompletionRequest, **options) -> CompletionRequest:
    if isinstance(prompt_or_request, CompletionRequest):
        if options:
            return replace(prompt_or_request, **options)
        return prompt_or_request
    return CompletionRequest(prompt=prompt_or_request, **options)
