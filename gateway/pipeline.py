"""The gateway's request path: validate -> limits -> cache -> classifier -> router -> answer -> cache store.

No gRPC here: the services are reached through `MeshClients`, and their failures arrive as
costmesh domain errors. The cache is never why a request fails (fail-open), and never why an
answer waits: the store is queued after the answer is built (`StoreQueue`). A lookup the cache
refused as busy, or that ran past its deadline, is answered uncached and its answer still stored.

Limits (`RequestLimits`, when the gateway has them): after validation and before any lookup or
paid call, the request is admitted against its tenant's and API key's limits (the key id the
authenticator bound, `bound_key_id`) with the most it could cost, or refused `LimitExceeded`;
it is settled with its bill when answered (a cache hit: nothing but the embedding), with nothing
when it failed, and keeps its reservation when abandoned during the paid call. A stream is
admitted before its first event and settled at its end, the client's cancellation included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from opentelemetry import trace
from redis.exceptions import RedisError

from costmesh.accounting import answer_savings
from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.convert import savings_to_pb
from costmesh.cost_records import bound_key_id
from costmesh.errors import CostmeshError, LimitExceeded, Overloaded, UpstreamError, UpstreamTimeout
from costmesh.gateway.cache_answers import HIT_STATUS, cache_scope, hit_response
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.limits import LimitStatus
from costmesh.gateway.request_limits import Admission, RequestLimits
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.store_queue import StoreQueue
from costmesh.gateway.validation import Limits, validate
from costmesh.pricing import MICROS_PER_USD, micro_usd
from costmesh.vocabulary import cache_status_name, tier_name, usd

log = structlog.get_logger()

@dataclass(frozen=True)
class GatewaySettings:
    cache_timeout_s: float = 2.0
    classify_timeout_s: float = 1.0
    fallback_tier: int = common.TIER_MODERATE  # when the classifier cannot be reached
    limits: Limits = field(default_factory=Limits)


@dataclass
class _Plan:
    """What the cache said about a request that must still be answered by a model."""

    request: gw.CompleteRequest
    request_id: str
    cache_status: int
    lookup: cache_pb2.LookupResponse
    store: bool = False  # store the answer (a miss, or a lookup the cache was too busy or slow to make)
    classified_tier: int = 0  # what the classifier said (min_tier/max_tier may move the tier routed)


class AnswerObserver(Protocol):
    """Told about every answered or failed request (stats, metrics, cost records)."""

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None: ...

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None: ...


class RoutingQualitySource(Protocol):
    """A tenant's recalibrated routing threshold and its live routing quality (`gateway.routing_shadow`)."""

    def offset_for(self, tenant_id: str) -> float: ...

    async def quality_pb(self, tenant_id: str) -> gw.RoutingQuality | None: ...


class Pipeline:
    def __init__(
        self,
        clients: MeshClients,
        settings: GatewaySettings,
        stats: GatewayStats,
        observers: Sequence[AnswerObserver] = (),
        stores: StoreQueue | None = None,
        limits: RequestLimits | None = None,
        routing: RoutingQualitySource | None = None,
    ):
        self._clients = clients
        self._settings = settings
        self.stats = stats
        self.limits = limits  # None: no tenant limits (no Redis, or COSTMESH_LIMITS=off)
        self.routing = routing  # None: no tenant's routing is shadow-checked (its threshold never moves)
        self._observers = (stats, *observers)
        self.stores = stores or StoreQueue(clients.store, timeout_s=settings.cache_timeout_s)
        stats.stores = self.stores.counters
        stats.pending_stores = self.stores.pending_of
        self.stores.tenant_counters = stats.store_counters

    async def aclose(self) -> None:
        """Finish the queued cache stores (within a grace period) and the limits' settles."""
        await self.stores.aclose()
        if self.limits is not None:
            await self.limits.aclose()

    async def complete(self, request: gw.CompleteRequest, deadline_s: float | None = None) -> gw.CompleteResponse:
        admission = await self._admit(request)
        try:
            plan = await self._begin(request)
            if isinstance(plan, gw.CompleteResponse):
                await _settle(admission, plan)
                return plan
            execute = await self._execute_request(plan)
            _calling(admission)
            try:
                result = await self._clients.execute(execute, deadline_s)
            except CostmeshError as exc:
                _failed(admission)
                self._failed(request, exc)
                raise
            response = await self._finish(plan, execute, result)
            await _settle(admission, response)
            return response
        finally:
            _close(admission)

    async def stream(
        self, request: gw.CompleteRequest, deadline_s: float | None = None
    ) -> AsyncIterator[gw.StreamCompleteResponse]:
        admission = await self._admit(request)  # before the first event
        try:
            plan = await self._begin(request)
            if isinstance(plan, gw.CompleteResponse):
                await _settle(admission, plan)
                if plan.text:
                    yield gw.StreamCompleteResponse(text_delta=plan.text)
                for delta in tool_call_deltas(plan):
                    yield delta
                plan.text = ""
                yield gw.StreamCompleteResponse(final=plan)
                return
            execute = await self._execute_request(plan)
            chunks: list[str] = []
            final: router_pb2.ExecuteResponse | None = None
            _calling(admission)
            try:
                async for event in self._clients.stream_execute(execute, deadline_s):
                    if event.WhichOneof("event") == "text_delta":
                        chunks.append(event.text_delta)
                        yield gw.StreamCompleteResponse(text_delta=event.text_delta)
                    else:
                        final = event.final
            except CostmeshError as exc:
                _failed(admission)
                self._failed(request, exc)
                raise
            if final is None:
                error = UpstreamError("router stream ended without a final event")
                _failed(admission)
                self._failed(request, error)
                raise error
            final.text = "".join(chunks)
            response = await self._finish(plan, execute, final)
            await _settle(admission, response)
            for delta in tool_call_deltas(response):
                yield delta
            response.text = ""
            yield gw.StreamCompleteResponse(final=response)
        finally:
            _close(admission)  # the client cancelled or closed the stream: settled in the background

    async def tenant_stats(self, tenant: str | None, key_id: str = "") -> gw.GetStatsResponse:
        """GetStats: `tenant`'s figures, its limits and its key's, and what they used (None: every
        tenant's figures, no limits)."""
        out = self.stats.to_pb(tenant)
        out.limits_enforced = self.limits is not None
        if self.routing is not None and tenant is not None:
            try:
                quality = await self.routing.quality_pb(tenant)
                if quality is not None:
                    out.routing_quality.CopyFrom(quality)
            except RedisError as exc:
                log.warning("GetStats: routing quality unreadable, Redis is unreachable", error=type(exc).__name__)
        if self.limits is None or tenant is None:
            return out
        try:
            for key in ("", key_id) if key_id else ("",):
                status = await self.limits.limiter.status(tenant, key)
                out.limits.append(limit_usage_pb(key, status))
        except RedisError as exc:
            log.warning("GetStats: limits unreadable, Redis is unreachable", error=type(exc).__name__)
            del out.limits[:]
        return out

    # -- steps -------------------------------------------------------------------------

    async def _admit(self, request: gw.CompleteRequest) -> Admission | None:
        """Validate, then take the request from its tenant's and key's limits (LimitExceeded)."""
        validate(request, self._settings.limits)
        if self.limits is None:
            return None
        try:
            return await self.limits.admit(request, bound_key_id())
        except LimitExceeded as exc:
            self.stats.count(request.tenant_id, "limited")
            log.info("over a limit", tenant=request.tenant_id, reason=str(exc), retry_after_s=exc.retry_after_s)
            raise

    async def _begin(self, request: gw.CompleteRequest) -> gw.CompleteResponse | _Plan:
        request_id = request.request_id or uuid.uuid4().hex
        span = trace.get_current_span()
        span.set_attribute("costmesh.request_id", request_id)
        span.set_attribute("costmesh.tenant_id", request.tenant_id)
        if request.cache.bypass:
            return _Plan(request, request_id, gw.CACHE_STATUS_BYPASSED, cache_pb2.LookupResponse())
        lookup, store = await self._lookup(request)
        span.set_attribute("costmesh.cache.hit_kind", cache_pb2.HitKind.Name(lookup.kind))
        if lookup.kind in HIT_STATUS:
            response = hit_response(request_id, lookup)
            self._record(request, response)
            return response
        if lookup.kind == cache_pb2.HIT_KIND_UNAVAILABLE:
            return _Plan(request, request_id, gw.CACHE_STATUS_UNAVAILABLE, lookup, store)
        return _Plan(request, request_id, gw.CACHE_STATUS_MISS, lookup, lookup.kind == cache_pb2.HIT_KIND_MISS)

    async def _lookup(self, request: gw.CompleteRequest) -> tuple[cache_pb2.LookupResponse, bool]:
        """The cache's answer, and whether an answer must still be stored when it could not look."""
        try:
            return await self._clients.lookup(
                cache_pb2.LookupRequest(
                    scope=cache_scope(request), messages=request.messages, sampling=request.sampling
                ),
                self._settings.cache_timeout_s,
            ), False
        except Overloaded:
            self.stats.count(request.tenant_id, "cache_lookups_busy")  # refused at once: uncached, still stored
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_UNAVAILABLE), True
        except UpstreamTimeout:
            self.stats.count(request.tenant_id, "cache_lookups_timed_out")
            log.warning("cache lookup timed out; answering uncached", timeout_s=self._settings.cache_timeout_s)
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_UNAVAILABLE), True
        except CostmeshError as exc:
            log.warning("cache lookup failed; answering uncached", error=str(exc))
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_UNAVAILABLE), False

    async def _execute_request(self, plan: _Plan) -> router_pb2.ExecuteRequest:
        request = plan.request
        routing = request.routing
        execute = router_pb2.ExecuteRequest(
            messages=request.messages,
            sampling=request.sampling,
            max_tier=routing.max_tier,
            model=routing.model,
            tenant_id=request.tenant_id,
            tools=request.tools,
            response_format=request.response_format,
        )
        if routing.model:
            return execute
        classified = await self._classify(request, plan.lookup)
        plan.classified_tier = classified.tier
        if classified.embedding and not plan.lookup.embedding:  # the classifier embedded it: store with it
            plan.lookup.embedding.extend(classified.embedding)
            plan.lookup.embedding_model = classified.embedding_model
        execute.tier = max(classified.tier, routing.min_tier) if routing.min_tier else classified.tier
        if routing.max_tier:
            execute.tier = min(execute.tier, routing.max_tier)
        execute.score = classified.score
        return execute

    async def _classify(
        self, request: gw.CompleteRequest, lookup: cache_pb2.LookupResponse
    ) -> classifier_pb2.ClassifyResponse:
        try:
            offset = self.routing.offset_for(request.tenant_id) if self.routing is not None else 0.0
            return await self._clients.classify(
                classifier_pb2.ClassifyRequest(messages=request.messages, embedding=lookup.embedding,
                                               threshold_offset=offset),
                self._settings.classify_timeout_s,
            )
        except CostmeshError as exc:
            if isinstance(exc, Overloaded):
                self.stats.count(request.tenant_id, "classifier_busy")
            log.warning("classifier failed; using the fallback tier", error=str(exc))
            return classifier_pb2.ClassifyResponse(tier=self._settings.fallback_tier, score=0.5,
                                                   signals=["classifier_unavailable"])

    async def _finish(
        self, plan: _Plan, execute: router_pb2.ExecuteRequest, result: router_pb2.ExecuteResponse
    ) -> gw.CompleteResponse:
        embedding_usd = plan.lookup.embedding_cost_usd
        cost = common.CostBreakdown()
        cost.CopyFrom(result.cost)
        cost.embedding_usd += embedding_usd
        cost.total_usd += embedding_usd
        baseline = result.baseline_cost_usd
        savings = savings_to_pb(answer_savings(baseline=baseline, list_cost=result.list_cost_usd,
                                               paid=result.cost.total_usd, embedding=embedding_usd,
                                               provider=result.provider))
        response = gw.CompleteResponse(
            request_id=plan.request_id,
            text=result.text,
            model=result.model,
            provider=result.provider,
            tier=result.tier,
            classified_tier=plan.classified_tier or execute.tier,
            complexity_score=execute.score,
            cached=False,
            cache_status=plan.cache_status,
            usage=result.usage,
            cost=cost,
            baseline_cost_usd=baseline,
            saving_usd=baseline - cost.total_usd,
            savings=savings,
            attempts=len(result.attempts),
            finish_reason=result.finish_reason,
            tool_calls=result.tool_calls,
        )
        if plan.store:
            self._store(plan, result)
        self._record(plan.request, response)
        return response

    def _store(self, plan: _Plan, result: router_pb2.ExecuteResponse) -> None:
        request = plan.request
        store = cache_pb2.StoreRequest(
            scope=cache_scope(request),
            messages=request.messages,
            sampling=request.sampling,
            text=result.text,
            model=result.model,
            usage=result.usage,
            baseline_cost_usd=result.baseline_cost_usd,
            tags=request.cache.tags,
            ttl_seconds=request.cache.ttl_seconds,
            embedding=plan.lookup.embedding,
            embedding_model=plan.lookup.embedding_model,
            finish_reason=result.finish_reason,
            quality_passed=result.quality_passed,
            tool_calls=result.tool_calls,
        )
        self.stores.submit(store)  # after the answer: a full queue drops and counts it

    def _failed(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        for observer in self._observers:
            observer.on_error(request, error)

    def _record(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        for observer in self._observers:
            observer.on_answer(request, response)
        span = trace.get_current_span()
        span.set_attribute("costmesh.cost_usd", response.cost.total_usd)
        span.set_attribute("costmesh.baseline_cost_usd", response.baseline_cost_usd)
        span.set_attribute("costmesh.saving_usd", response.saving_usd)
        span.set_attribute("costmesh.cached", response.cached)
        if response.model:
            span.set_attribute("gen_ai.response.model", response.model)
        log.info(
            "answered",
            request_id=response.request_id,
            cache=cache_status_name(response.cache_status),
            model=response.model,
            tier=tier_name(response.tier) or None,
            cost_usd=usd(response.cost.total_usd),
            baseline_usd=usd(response.baseline_cost_usd),
        )


async def _settle(admission: Admission | None, response: gw.CompleteResponse) -> None:
    if admission is not None:
        await admission.settle(response)


def _calling(admission: Admission | None) -> None:
    if admission is not None:
        admission.calling()


def _failed(admission: Admission | None) -> None:
    if admission is not None:
        admission.failed()


def _close(admission: Admission | None) -> None:
    if admission is not None:
        admission.close()


def limit_usage_pb(key_id: str, status: LimitStatus) -> gw.LimitUsage:
    """A tenant's (key_id "") or a key's limits and what was used against them, as GetStats shows them."""
    limits = status.limits
    out = gw.LimitUsage(
        key_id=key_id,
        spent_today_usd=status.spent_today_micro_usd / MICROS_PER_USD,
        spent_today_micro_usd=status.spent_today_micro_usd,
        spent_this_month_usd=status.spent_this_month_micro_usd / MICROS_PER_USD,
        spent_this_month_micro_usd=status.spent_this_month_micro_usd,
    )
    if limits.rpm is not None:
        out.requests_per_minute = limits.rpm
    if limits.tpm is not None:
        out.tokens_per_minute = limits.tpm
    if limits.usd_per_day is not None:
        out.budget_per_day_usd = limits.usd_per_day
        out.budget_per_day_micro_usd = micro_usd(limits.usd_per_day)
    if limits.usd_per_month is not None:
        out.budget_per_month_usd = limits.usd_per_month
        out.budget_per_month_micro_usd = micro_usd(limits.usd_per_month)
    if status.requests_available is not None:
        out.requests_available = status.requests_available
    if status.tokens_available is not None:
        out.tokens_available = status.tokens_available
    return out


def tool_call_deltas(response: gw.CompleteResponse) -> list[gw.StreamCompleteResponse]:
    """The answer's tool calls as stream events, one whole call each (the router hands the
    gateway complete calls: a call is only served once the gate has checked its arguments)."""
    return [
        gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(
            index=i, id=call.id, name=call.name, arguments_delta=call.arguments_json))
        for i, call in enumerate(response.tool_calls)
    ]
