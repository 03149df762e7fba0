"""What the router takes in and hands back, as plain domain objects."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from costmesh.catalog import Tier
from costmesh.domain import Cost, Message, Sampling, ToolCall, Usage
from costmesh.output_spec import OutputSpec


class Outcome(enum.IntEnum):
    """Values match `costmesh.router.v1.AttemptOutcome`."""

    OK = 1
    GATE_FAILED = 2
    ERROR = 3


@dataclass(frozen=True)
class RouteRequest:
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    tier: Tier | None = None  # where the cascade starts; None -> simple
    max_tier: Tier | None = None  # None -> no cap
    model: str | None = None  # pinned: one model, retries only
    tenant_id: str = ""
    score: float = 0.0
    timeout_s: float | None = None  # what is left of the caller's deadline
    output: OutputSpec = OutputSpec()  # the tools offered and the format asked for


@dataclass
class Attempt:
    model: str
    provider: str
    tier: Tier
    outcome: Outcome
    quality_score: float = 0.0
    detail: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    list_cost_usd: float = 0.0
    latency_ms: float = 0.0


@dataclass
class RouteResult:
    text: str
    model: str
    provider: str
    tier: Tier
    usage: Usage  # summed over attempts
    cost: Cost  # summed over attempts, failed ones included
    baseline_cost_usd: float
    list_cost_usd: float
    attempts: list[Attempt]
    quality_score: float
    quality_passed: bool
    finish_reason: str
    upgrades: int = 0
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Delta:
    """A piece of answer text, streamed to the caller."""

    text: str
