"""What the inference engine hands back: text deltas, a final result, and engine stats (no vLLM, no gRPC)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextDelta:
    """New text since the previous event of the same request."""

    text: str


@dataclass(frozen=True)
class GenerateResult:
    """The last event of a request: the whole text and what it used."""

    text: str
    prompt_tokens: int
    cached_prompt_tokens: int  # prompt tokens served from vLLM's prefix cache
    output_tokens: int
    finish_reason: str  # "stop", "length" or "abort"
    model: str
    request_id: str


@dataclass(frozen=True)
class EngineStats:
    """The engine's own metrics, as its stat loggers last received them."""

    model: str
    prefix_cache_queries: int  # prompt tokens looked up in the prefix cache, since start
    prefix_cache_hits: int  # of those, tokens found
    kv_cache_usage: float  # fraction of KV blocks in use, 0..1
    running_requests: int
    waiting_requests: int

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else 0.0
