"""The cache's own domain types (no protobuf)."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field

from costmesh.domain import Message, Sampling, ToolCall, Usage

from .scope import Scope


class HitKind(enum.IntEnum):
    """Values match `costmesh.cache.v1.HitKind`."""

    MISS = 1
    EXACT = 2
    SEMANTIC = 3
    NOT_CACHEABLE = 4
    UNAVAILABLE = 5  # Redis down, erroring or too slow: a miss


@dataclass(frozen=True)
class CachedAnswer:
    """What an entry holds besides its prompt and vector (stored as JSON metadata)."""

    text: str
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    baseline_cost_usd: float = 0.0
    tenant_id: str = ""
    tags: tuple[str, ...] = ()
    finish_reason: str = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    # Served from the exact tier only (it calls tools, or answers a tool-result conversation),
    # unless the request opts in (`Scope.semantic_tool_answers`).
    exact_only: bool = False

    def metadata(self) -> dict:
        """What `from_metadata` needs to rebuild this answer; defaults and zero counts left out
        (every entry pays for its metadata's bytes)."""
        out = {
            "model": self.model,
            "usage": {k: v for k, v in asdict(self.usage).items() if v},
            "baseline_cost_usd": self.baseline_cost_usd,
            "tenant_id": self.tenant_id,
            "tags": list(self.tags),
            "finish_reason": self.finish_reason,
            "tool_calls": [[c.id, c.name, c.arguments] for c in self.tool_calls],
            "exact_only": self.exact_only,
        }
        defaults = {"model": "", "usage": {}, "baseline_cost_usd": 0.0, "tenant_id": "", "tags": [],
                    "finish_reason": "stop", "tool_calls": [], "exact_only": False}
        return {k: v for k, v in out.items() if v != defaults[k]}

    @classmethod
    def from_metadata(cls, text: str, metadata: dict | str | bytes | None) -> "CachedAnswer":
        if isinstance(metadata, (str, bytes)):
            metadata = json.loads(metadata)
        metadata = metadata or {}
        usage = metadata.get("usage") or {}
        return cls(
            text=text,
            model=metadata.get("model", ""),
            usage=Usage(**{k: int(v) for k, v in usage.items() if k in Usage.__dataclass_fields__}),
            baseline_cost_usd=float(metadata.get("baseline_cost_usd", 0.0)),
            tenant_id=metadata.get("tenant_id", ""),
            tags=tuple(metadata.get("tags", ())),
            finish_reason=metadata.get("finish_reason", "stop"),
            tool_calls=tuple(ToolCall(*map(str, call)) for call in metadata.get("tool_calls", ())),
            exact_only=bool(metadata.get("exact_only", False)),
        )


@dataclass(frozen=True)
class LookupRequest:
    scope: Scope
    messages: tuple[Message, ...]
    sampling: Sampling


@dataclass(frozen=True)
class LookupResult:
    kind: HitKind
    answer: CachedAnswer | None = None
    entry_id: str = ""
    similarity: float = 0.0
    embedding: tuple[float, ...] = ()
    embedding_model: str = ""
    embedding_cost_usd: float = 0.0
    shadow: bool = False  # a semantic hit drawn for a shadow check (the tenant consented)


@dataclass(frozen=True)
class ShadowRequest:
    """A shadow check of a semantic hit to judge and count (`JudgeShadow`)."""

    scope: Scope
    messages: tuple[Message, ...]
    served_text: str
    fresh_text: str
    entry_id: str = ""
    verdict: str = ""  # "same" or "different" when the caller judged; "": the cache's judge decides
    similarity: float = 0.0


@dataclass(frozen=True)
class StoreRequest:
    scope: Scope
    messages: tuple[Message, ...]
    sampling: Sampling
    text: str
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    baseline_cost_usd: float = 0.0
    tags: tuple[str, ...] = ()
    ttl_seconds: int = 0  # 0: the cache's default
    embedding: tuple[float, ...] = ()
    finish_reason: str = ""
    quality_passed: bool = False
    embedding_model: str = ""  # the model `embedding` came from: reused only when it is the cache's
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class StoreResult:
    stored: bool
    entry_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class InvalidateRequest:
    tenant_id: str
    tags: tuple[str, ...] = ()
    entry_id: str = ""
    all: bool = False
    session_id: str = ""  # every session-scoped entry of this session
