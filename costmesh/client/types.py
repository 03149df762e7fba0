"""What the client returns: plain frozen dataclasses, no protobuf (`Savings` is the services' own,
`costmesh.accounting.Savings`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from costmesh.accounting import Savings
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier
from costmesh.client.request import ToolCall
from costmesh.vocabulary import cache_status_name, tier_key, usd, usd_of_micro


class CacheStatus(enum.StrEnum):
    """Where the answer came from; compares and prints as its name: `miss`, `exact_hit`..."""

    UNSPECIFIED = "unspecified"
    MISS = "miss"
    EXACT_HIT = "exact_hit"
    SEMANTIC_HIT = "semantic_hit"
    BYPASSED = "bypassed"
    UNAVAILABLE = "unavailable"  # the cache could not be reached: answered uncached

    @classmethod
    def from_pb(cls, value: int) -> "CacheStatus":
        return cls(cache_status_name(value))


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @classmethod
    def from_pb(cls, u: common.TokenUsage) -> "Usage":
        return cls(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens)


def _usd(message, name: str) -> float:
    """`<name>_usd` in whole micro-dollars: the `<name>_micro_usd` the gateway filled, or the double
    rounded (a gateway that left the integer out)."""
    micro = getattr(message, f"{name}_micro_usd", 0)
    return usd_of_micro(micro) if micro else usd(getattr(message, f"{name}_usd"))


@dataclass(frozen=True)
class CostBreakdown:
    """Dollars this request cost, split by what they paid for (whole micro-dollars)."""

    input_usd: float = 0.0
    cache_read_usd: float = 0.0
    cache_write_usd: float = 0.0
    output_usd: float = 0.0
    embedding_usd: float = 0.0
    discount_usd: float = 0.0
    total_usd: float = 0.0

    @classmethod
    def from_pb(cls, c: common.CostBreakdown) -> "CostBreakdown":
        return cls(*(_usd(c, name) for name in ("input", "cache_read", "cache_write", "output", "embedding",
                                                 "discount", "total")))


def savings_from_pb(s: common.LayerSavings) -> Savings:
    """Dollars saved against the baseline, per cost layer, in whole micro-dollars."""
    return Savings(*(_usd(s, name) for name in ("cache", "routing", "prompt_caching", "batch", "inference")))


def _tier(value: int) -> Tier | None:
    return Tier(value) if value else None


@dataclass(frozen=True)
class Completion:
    request_id: str
    text: str
    model: str
    provider: str
    tier: Tier | None              # the tier that served the answer (None for a cache hit); str(): "simple"
    classified_tier: Tier | None   # what the classifier said (min_tier may have raised `tier` above it)
    complexity_score: float
    cached: bool
    cache_status: CacheStatus      # "miss", "exact_hit", "semantic_hit", "bypassed", "unavailable"
    cache_similarity: float
    usage: Usage                   # tokens models processed for this request: none for a cache hit
    cost: CostBreakdown
    baseline_cost_usd: float       # premium model, no cache, no provider discounts
    saving_usd: float
    savings: Savings
    attempts: int
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()  # the tools the answer calls (finish_reason "tool_use")

    @classmethod
    def from_pb(cls, r: gw.CompleteResponse, text: str | None = None) -> "Completion":
        return cls(
            request_id=r.request_id, text=r.text if text is None else text, model=r.model, provider=r.provider,
            tier=_tier(r.tier), classified_tier=_tier(r.classified_tier), complexity_score=r.complexity_score,
            cached=r.cached, cache_status=CacheStatus.from_pb(r.cache_status), cache_similarity=r.cache_similarity,
            usage=Usage() if r.cached else Usage.from_pb(r.usage), cost=CostBreakdown.from_pb(r.cost),
            baseline_cost_usd=_usd(r, "baseline_cost"), saving_usd=_usd(r, "saving"),
            savings=savings_from_pb(r.savings), attempts=r.attempts,
            finish_reason=r.finish_reason,
            tool_calls=tuple(ToolCall(c.id, c.name, c.arguments_json) for c in r.tool_calls),
        )


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer, as it streams."""

    text: str


StreamEvent = TextDelta | Completion  # deltas, then one Completion carrying the full text and the bill


@dataclass(frozen=True)
class LimitUsage:
    """The tenant's (`key_id` "") or the calling key's limits, None where there is none, and what
    was used: USD spent today and this month (UTC; kept while a budget is set), what the request
    and token buckets hold now."""

    key_id: str = ""
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    usd_per_day: float | None = None
    usd_per_month: float | None = None
    spent_today_usd: float = 0.0
    spent_this_month_usd: float = 0.0
    requests_available: float | None = None
    tokens_available: float | None = None

    @classmethod
    def from_pb(cls, u: gw.LimitUsage) -> "LimitUsage":
        def optional(name: str):
            return getattr(u, name) if u.HasField(name) else None

        def budget(name: str):
            return _usd(u, name) if u.HasField(f"{name}_usd") else None

        return cls(u.key_id, optional("requests_per_minute"), optional("tokens_per_minute"),
                   budget("budget_per_day"), budget("budget_per_month"), _usd(u, "spent_today"),
                   _usd(u, "spent_this_month"), optional("requests_available"), optional("tokens_available"))


@dataclass(frozen=True)
class Stats:
    """The caller's tenant's figures on the gateway it asked (no other tenant's), and its limits."""

    requests: int
    exact_hits: int
    semantic_hits: int
    cache_unavailable: int
    errors: int
    tier_counts: dict[str, int] = field(default_factory=dict)  # "simple" -> answers it served
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    saving_usd: float = 0.0
    savings: Savings = field(default_factory=Savings)
    tenant_id: str = ""
    limited: int = 0  # requests refused over a limit (RateLimited)
    limits_enforced: bool = False
    limits: tuple[LimitUsage, ...] = ()  # the tenant's, then the key's own

    @classmethod
    def from_pb(cls, s: gw.GetStatsResponse) -> "Stats":
        tiers = {tier_key(name): count for name, count in s.tier_counts.items()}
        return cls(s.requests, s.exact_hits, s.semantic_hits, s.cache_unavailable, s.errors, tiers,
                   _usd(s, "cost"), _usd(s, "baseline_cost"), _usd(s, "saving"), savings_from_pb(s.savings),
                   s.tenant_id, s.limited, s.limits_enforced, tuple(LimitUsage.from_pb(u) for u in s.limits))
