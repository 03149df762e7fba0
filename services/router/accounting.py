"""The router's bill: per-attempt costs summed, the list price beside them, and the all-premium
baseline (`costmesh.accounting`)."""

from __future__ import annotations

from costmesh.accounting import baseline_usd
from costmesh.catalog import Catalog, ModelSpec, Tier
from costmesh.domain import Cost, Generation, Usage
from costmesh.pricing import list_cost_of

from .gate import Verdict
from .records import Attempt, Outcome, RouteResult


def answered_attempt(
    spec: ModelSpec, tier: Tier, answer: Generation, outcome: Outcome, verdict: Verdict, latency_ms: float
) -> Attempt:
    return Attempt(
        model=spec.id,
        provider=answer.provider or spec.provider,
        tier=tier,
        outcome=outcome,
        quality_score=verdict.score,
        detail=", ".join(verdict.reasons),
        usage=answer.usage,
        cost=answer.cost,
        list_cost_usd=list_cost_of(spec, answer.usage).total_usd,
        latency_ms=latency_ms,
    )


def bill(
    catalog: Catalog,
    attempts: list[Attempt],
    spec: ModelSpec,
    answer: Generation,
    tier: Tier,
    verdict: Verdict,
    upgrades: int,
) -> RouteResult:
    """The served `answer` with every attempt's usage and cost added up (failed ones too)."""
    usage, cost = Usage(), Cost()
    for attempt in attempts:
        usage += attempt.usage
        cost += attempt.cost
    baseline = baseline_usd(catalog, answer.usage)
    return RouteResult(
        text=answer.text,
        model=spec.id,
        provider=answer.provider or spec.provider,
        tier=tier,
        usage=usage,
        cost=cost,
        baseline_cost_usd=baseline,
        list_cost_usd=sum(a.list_cost_usd for a in attempts),
        attempts=list(attempts),
        quality_score=verdict.score,
        quality_passed=verdict.passed,
        finish_reason=answer.finish_reason,
        upgrades=upgrades,
        tool_calls=answer.tool_calls,
    )
