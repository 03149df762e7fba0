"""RouterService: protobuf <-> domain only; the work is in `cascade.Cascade`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import Tier
from costmesh.convert import (
    cost_to_pb,
    messages_from_pb,
    output_spec_from_pb,
    sampling_from_pb,
    tool_calls_to_pb,
    usage_to_pb,
    with_micro_usd,
)
from costmesh.errors import InvalidRequest

from .cascade import Cascade
from .records import Attempt, Delta, RouteRequest, RouteResult


def _tier(value: int, field: str) -> Tier | None:
    if value == 0:
        return None
    try:
        return Tier(value)
    except ValueError:
        raise InvalidRequest(f"{field}: unknown tier {value}") from None


def route_request(
    request: router_pb2.ExecuteRequest | router_pb2.StreamExecuteRequest, timeout_s: float | None
) -> RouteRequest:
    return RouteRequest(
        messages=messages_from_pb(request.messages),
        sampling=sampling_from_pb(request.sampling),
        tier=_tier(request.tier, "tier"),
        max_tier=_tier(request.max_tier, "max_tier"),
        model=request.model or None,
        tenant_id=request.tenant_id,
        score=request.score,
        timeout_s=timeout_s,
        output=output_spec_from_pb(request.tools, request.response_format),
    )


def _attempt_pb(attempt: Attempt) -> router_pb2.Attempt:
    return router_pb2.Attempt(
        model=attempt.model,
        provider=attempt.provider,
        tier=int(attempt.tier),
        outcome=int(attempt.outcome),
        quality_score=attempt.quality_score,
        detail=attempt.detail,
        cost=cost_to_pb(attempt.cost),
        latency_ms=attempt.latency_ms,
    )


def response_pb(result: RouteResult, *, text: bool = True) -> router_pb2.ExecuteResponse:
    return with_micro_usd(router_pb2.ExecuteResponse(
        text=result.text if text else "",
        model=result.model,
        provider=result.provider,
        tier=int(result.tier),
        usage=usage_to_pb(result.usage),
        cost=cost_to_pb(result.cost),
        baseline_cost_usd=result.baseline_cost_usd,
        list_cost_usd=result.list_cost_usd,
        attempts=[_attempt_pb(a) for a in result.attempts],
        quality_score=result.quality_score,
        quality_passed=result.quality_passed,
        finish_reason=result.finish_reason,
        tool_calls=tool_calls_to_pb(result.tool_calls),
    ))


def plan_request(request: router_pb2.PlanRequest) -> RouteRequest:
    return RouteRequest(
        messages=(),
        tier=_tier(request.tier, "tier"),
        max_tier=_tier(request.max_tier, "max_tier"),
        model=request.model or None,
    )


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    def __init__(self, cascade: Cascade):
        self._cascade = cascade

    async def Execute(self, request: router_pb2.ExecuteRequest, context) -> router_pb2.ExecuteResponse:
        result = await self._cascade.execute(route_request(request, context.time_remaining()))
        return response_pb(result)

    async def StreamExecute(
        self, request: router_pb2.StreamExecuteRequest, context
    ) -> AsyncIterator[router_pb2.StreamExecuteResponse]:
        async for event in self._cascade.stream(route_request(request, context.time_remaining())):
            if isinstance(event, Delta):
                yield router_pb2.StreamExecuteResponse(text_delta=event.text)
            else:
                yield router_pb2.StreamExecuteResponse(final=response_pb(event, text=False))

    async def Plan(self, request: router_pb2.PlanRequest, context) -> router_pb2.PlanResponse:
        tier, spec = self._cascade.first(plan_request(request), tuple(request.providers))
        return router_pb2.PlanResponse(model=spec.id, provider=spec.provider, tier=int(tier))
