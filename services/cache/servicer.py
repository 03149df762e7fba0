"""CacheService over gRPC: protobuf <-> cache domain objects, nothing else."""

from __future__ import annotations

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.convert import (
    messages_from_pb,
    sampling_from_pb,
    tool_calls_from_pb,
    tool_calls_to_pb,
    usage_from_pb,
    usage_to_pb,
)

from .core import CacheCore
from .records import InvalidateRequest, LookupRequest, ShadowRequest, StoreRequest
from .scope import Scope
from .shadow import LiveEstimate

_VERDICT_NAMES = {cache_pb2.SHADOW_VERDICT_SAME: "same", cache_pb2.SHADOW_VERDICT_DIFFERENT: "different"}


def _scope(scope: cache_pb2.Scope) -> Scope:
    return Scope(scope.tenant_id, scope.session_id, scope.session_scoped, scope.model_policy,
                 scope.output_spec, scope.semantic_tool_answers)


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self, core: CacheCore):
        self._core = core

    async def Lookup(self, request: cache_pb2.LookupRequest, context) -> cache_pb2.LookupResponse:
        result = await self._core.lookup(LookupRequest(
            _scope(request.scope), messages_from_pb(request.messages), sampling_from_pb(request.sampling)),
            deadline_s=context.time_remaining())
        response = cache_pb2.LookupResponse(
            kind=int(result.kind),
            entry_id=result.entry_id,
            similarity=result.similarity,
            embedding=list(result.embedding),
            embedding_model=result.embedding_model,
            embedding_cost_usd=result.embedding_cost_usd,
            shadow=result.shadow,
        )
        if result.answer is not None:
            response.text = result.answer.text
            response.model = result.answer.model
            response.usage.CopyFrom(usage_to_pb(result.answer.usage))
            response.baseline_cost_usd = result.answer.baseline_cost_usd
            response.tool_calls.extend(tool_calls_to_pb(result.answer.tool_calls))
        return response

    async def Store(self, request: cache_pb2.StoreRequest, context) -> cache_pb2.StoreResponse:
        result = await self._core.store(StoreRequest(
            scope=_scope(request.scope),
            messages=messages_from_pb(request.messages),
            sampling=sampling_from_pb(request.sampling),
            text=request.text,
            model=request.model,
            usage=usage_from_pb(request.usage),
            baseline_cost_usd=request.baseline_cost_usd,
            tags=tuple(request.tags),
            ttl_seconds=request.ttl_seconds,
            embedding=tuple(request.embedding),
            finish_reason=request.finish_reason,
            quality_passed=request.quality_passed,
            embedding_model=request.embedding_model,
            tool_calls=tool_calls_from_pb(request.tool_calls),
        ))
        return cache_pb2.StoreResponse(stored=result.stored, entry_id=result.entry_id, reason=result.reason)

    async def Invalidate(self, request: cache_pb2.InvalidateRequest, context) -> cache_pb2.InvalidateResponse:
        removed = await self._core.invalidate(InvalidateRequest(
            request.tenant_id, tuple(request.tags), request.entry_id, request.all, request.session_id))
        return cache_pb2.InvalidateResponse(removed=removed)

    async def JudgeShadow(self, request: cache_pb2.JudgeShadowRequest, context) -> cache_pb2.JudgeShadowResponse:
        result = await self._core.judge_shadow(ShadowRequest(
            scope=_scope(request.scope), messages=messages_from_pb(request.messages),
            served_text=request.served_text, fresh_text=request.fresh_text, entry_id=request.entry_id,
            verdict=_VERDICT_NAMES.get(request.verdict, ""), similarity=request.similarity))
        return cache_pb2.JudgeShadowResponse(
            verdict=cache_pb2.SHADOW_VERDICT_SAME if result.same else cache_pb2.SHADOW_VERDICT_DIFFERENT,
            score=result.score, judge=result.judge, judge_cost_usd=result.judge_cost_usd, live=_live(result.live))

    async def GetStats(self, request: cache_pb2.GetStatsRequest, context) -> cache_pb2.GetStatsResponse:
        s = await self._core.stats(request.tenant_id)
        return cache_pb2.GetStatsResponse(
            lookups=s.lookups, exact_hits=s.exact_hits, semantic_hits=s.semantic_hits, misses=s.misses,
            errors=s.errors, stores=s.stores, stores_refused=s.stores_refused, stores_dropped=s.stores_dropped,
            entries=s.entries, hit_rate=s.hit_rate, avg_hit_similarity=s.avg_hit_similarity,
            verifier_rejections=s.verifier_rejections, evictions=s.evictions, bytes_per_entry=s.bytes_per_entry,
            embedding_model=s.embedding_model, index_name=s.index_name,
            verifier=s.verifier, max_false_hit_rate=s.max_false_hit_rate, verifier_threshold=s.verifier_threshold,
            calibrated_false_hit_rate=s.calibrated_false_hit_rate, calibrated_precision=s.calibrated_precision,
            calibrated_recall=s.calibrated_recall, calibrated_trap_recall=s.calibrated_trap_recall,
            redis_available=s.redis_available, not_cacheable=s.not_cacheable,
            lookups_busy=s.lookups_busy, stores_busy=s.stores_busy,
            live=_live(s.live) if s.live is not None else None,
        )


def _live(estimate: LiveEstimate) -> cache_pb2.LiveFalseHitEstimate:
    return cache_pb2.LiveFalseHitEstimate(
        tenant_id=estimate.tenant_id, verdicts=estimate.verdicts, false_hits=estimate.false_hits,
        false_hit_rate=estimate.false_hit_rate, upper_bound=estimate.upper_bound,
        total_verdicts=estimate.total_verdicts, total_false_hits=estimate.total_false_hits,
        threshold=estimate.threshold, calibrated_threshold=estimate.calibrated_threshold,
        max_false_hit_rate=estimate.max_false_hit_rate, min_verdicts=estimate.min_verdicts,
        threshold_moves=estimate.threshold_moves,
    )
