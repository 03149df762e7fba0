"""The cache: exact tier, then verified semantic search; fail-open on every Redis problem.

No gRPC here. `CacheCore` takes its collaborators (Redis client, embedder, verifier, policy)
from its caller, so tests can build one directly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import structlog
from opentelemetry import trace
from redis.asyncio import Redis
from redisvl.query.filter import Tag

from costmesh.admission import Admission
from costmesh.domain import Sampling
from costmesh.embeddings import Embedder
from costmesh.errors import InvalidRequest, PermissionDenied, Unavailable

from .config import CacheConfig
from .exact import ExactTier
from .guard import RedisGuard, RedisUnavailable
from .judge import AnswerJudge
from .policy import CachePolicy
from .records import (
    CachedAnswer,
    HitKind,
    InvalidateRequest,
    LookupRequest,
    LookupResult,
    ShadowRequest,
    StoreRequest,
    StoreResult,
)
from .scope import ScopedQuery, scope_query
from .semantic import SemanticTier, index_name_for, tag_value, tenant_filter
from .shadow import ShadowLedger, ShadowResult
from .stats import CacheCounters, CacheStats
from .verifier import Verifier

log = structlog.get_logger("costmesh.cache")
MEMORY_SAMPLE = 16
INDEX_MEMORY_PARTS = ("inverted_sz_mb", "vector_index_sz_mb", "offset_vectors_sz_mb", "doc_table_size_mb",
                      "sortable_values_size_mb", "key_table_size_mb", "tag_overhead_sz_mb", "text_overhead_sz_mb")


def word_count(text: str) -> int:
    return len(text.split())


class CacheCore:
    def __init__(
        self,
        *,
        client: Redis,
        redis_url: str,
        embedder: Embedder,
        verifier: Verifier,
        config: CacheConfig | None = None,
        policy: CachePolicy | None = None,
        embedding_usd_per_mtok: float = 0.0,
        count_tokens: Callable[[str], int] = word_count,
        tracer: trace.Tracer | None = None,
        draw: Callable[[], float] = random.random,
    ):
        """`draw`: a uniform number in [0, 1) per semantic hit, compared with the tenant's shadow rate."""
        self.config = config or CacheConfig()
        self.policy = policy or CachePolicy(allow_sampled=self.config.allow_sampled, ttl_s=self.config.ttl_s,
                                            tenants=self.config.tenant_policies)
        self.embedder = embedder
        self.verifier = verifier
        self.client = client
        self.index_name = index_name_for(embedder.model_id, self.config.index_prefix, self.config.vector_dtype)
        self.semantic = SemanticTier(client, redis_url, model_id=embedder.model_id, dims=embedder.dims,
                                     index_name=self.index_name, dtype=self.config.vector_dtype)
        self.exact = ExactTier(client, self.semantic.key)
        self.guard = RedisGuard(self.config.redis_timeout_s, self.config.redis_cooldown_s)
        self.counters = CacheCounters()
        self.embedding_usd_per_mtok = embedding_usd_per_mtok
        self._count_tokens = count_tokens
        self._index_lock = asyncio.Lock()
        self._tracer = tracer or trace.get_tracer("costmesh.cache")
        self.lookup_admission = Admission("cache lookups", self.config.max_inflight_lookups)
        self.store_admission = Admission("cache stores", self.config.max_inflight_stores)
        # Shadow checks: the tenant's live false-hit estimate and the threshold it moves (the
        # verifier's own, when it has one to move: the learned verifier).
        point = getattr(verifier, "point", None)
        self.shadow = ShadowLedger(client, self._redis, self.config.shadow, prefix=self.config.index_prefix,
                                   calibrated=getattr(verifier, "threshold", None),
                                   calibrated_precision=point.quora_precision if point is not None else None)
        self.judge = AnswerJudge(verifier, embedder, self.config.shadow.judge_threshold, count_tokens)
        self._draw = draw

    # -- Redis plumbing -------------------------------------------------------------------

    async def _redis(self, operation, *, admin: bool = False):
        """One Redis operation under the guard, re-creating the index first when it may be gone.
        `admin` (Invalidate, GetStats): the longer admin deadline, and a slow reply does not
        trip the guard (only a failed connection does), so lookups never pay for it."""
        if self.guard.needs_index and self.guard.available:
            async with self._index_lock:
                if self.guard.needs_index:
                    await self.guard.call(self.semantic.ensure_index)
                    self.guard.needs_index = False
        if admin:
            return await self.guard.call(operation, timeout_s=self.config.admin_timeout_s, trip_on_timeout=False)
        return await self.guard.call(operation)

    async def start(self) -> None:
        """Create the index now if Redis is reachable; otherwise on first use."""
        try:
            await self._redis(self.client.ping)
        except RedisUnavailable as exc:
            log.warning("redis unavailable at start; cache will serve misses until it is back", error=str(exc))

    async def aclose(self) -> None:
        await self.shadow.aclose()
        await self.client.aclose()
        close = getattr(self.verifier, "aclose", None)
        if close is not None:
            await close()

    # -- lookup ---------------------------------------------------------------------------

    async def lookup(self, request: LookupRequest, deadline_s: float | None = None) -> LookupResult:
        """The request's cached answer, if any; raises `Overloaded` at once when the cache is saturated
        (too many lookups in flight, or recent ones slower than the `deadline_s` seconds left)."""
        query = scope_query(request.scope, request.messages, request.sampling)
        with self.lookup_admission.slot(deadline_s):
            return await self._lookup(request, query)

    async def _lookup(self, request: LookupRequest, query: ScopedQuery) -> LookupResult:
        self.counters.lookups += 1
        span = trace.get_current_span()
        if self.policy.lookup_refusal(request.sampling, query.tenant_id):
            result = await self._miss(HitKind.NOT_CACHEABLE, query)
            self.counters.not_cacheable += 1
            return self._finish(span, result, "")

        unavailable = False
        try:
            answer = await self._redis(lambda: self.exact.get(query))
        except RedisUnavailable as exc:
            answer, unavailable = None, True
            self._error("lookup", exc)
        if answer is not None:
            self.counters.exact_hits += 1
            self.counters.hit_similarity_sum += 1.0
            result = LookupResult(HitKind.EXACT, answer, query.entry_id, 1.0)  # no embedding computed
            return self._finish(span, result, "")

        with self._tracer.start_as_current_span("cache.embed"):
            vector, query_encoding = await self._embed_query(query.query)
        if unavailable or vector is None:
            return self._finish(span, self._result(HitKind.UNAVAILABLE if unavailable else HitKind.MISS,
                                                   query, vector), "")
        if query.exact_only:  # a tool-result conversation: only an exact repeat is served
            return self._finish(span, self._result(HitKind.MISS, query, vector), "")
        try:
            with self._tracer.start_as_current_span("cache.search"):
                candidates = await self._redis(lambda: self.semantic.search(
                    query, vector, num_results=self.config.candidates, min_similarity=self.verifier_floor))
        except RedisUnavailable as exc:
            self._error("lookup", exc)
            return self._finish(span, self._result(HitKind.UNAVAILABLE, query, vector), "")

        if not query.semantic_tool_answers:  # answers that call tools: served to an exact repeat only
            candidates = [c for c in candidates if not c.answer.exact_only]
        verdict_label = ""
        shadowed = self.policy.shadow_rate(query.tenant_id) > 0  # its threshold may have moved
        threshold = self.shadow.threshold_for(query.tenant_id) if shadowed else None
        if candidates:
            with self._tracer.start_as_current_span("cache.verify") as verify_span:
                verify_span.set_attribute("costmesh.cache.candidates", len(candidates))
                verdicts = await self._verify(query.query, candidates, query_encoding, threshold)
        else:
            verdicts = []
        if verdicts is None:  # the verifier failed: a miss, counted once as an error, never as rejections
            return self._finish(span, self._result(HitKind.MISS, query, vector), "error")
        for candidate, verdict in zip(candidates, verdicts):
            if verdict.accepted:
                self.counters.semantic_hits += 1
                self.counters.hit_similarity_sum += candidate.similarity
                span.set_attribute("costmesh.cache.verifier_score", verdict.score)
                shadow = shadowed and self._draw() < self.policy.shadow_rate(query.tenant_id)
                if shadow:
                    self.counters.shadow_drawn += 1
                    span.set_attribute("costmesh.cache.shadow", True)
                result = self._result(HitKind.SEMANTIC, query, vector, candidate.answer, candidate.entry_id,
                                      candidate.similarity, shadow)
                return self._finish(span, result, "accepted")
            self.counters.verifier_rejections += 1
            verdict_label = "rejected"
            log.info("verifier rejected a candidate", reason=verdict.reason, similarity=round(candidate.similarity, 4),
                     entry_id=candidate.entry_id)
        return self._finish(span, self._result(HitKind.MISS, query, vector), verdict_label)

    async def _verify(self, query: str, candidates: list, query_encoding=None,
                      threshold: float | None = None) -> list | None:
        """The verifier's verdicts, best candidate first; None when it failed (the lookup is a miss).
        `threshold`: the tenant's, moved by its shadow checks (None: the verifier's own)."""
        if not candidates:
            return []
        extra = {"threshold": threshold} if threshold is not None else {}
        try:
            return await self.verifier.verify_many(query, [(c.prompt, c.similarity) for c in candidates],
                                                   query_encoding=query_encoding, until_accepted=True, **extra)
        except Exception as exc:  # never why a request fails, never a wrong answer either
            self.counters.errors += 1
            log.error("verifier failed", error=repr(exc))
            return None

    @property
    def verifier_floor(self) -> float:
        """The similarity the KNN search cuts at: the verifier's own floor when it has one."""
        return float(getattr(self.verifier, "min_similarity", self.config.min_similarity))

    async def _miss(self, kind: HitKind, query: ScopedQuery) -> LookupResult:
        return self._result(kind, query, await self._embed(query.query))

    def _result(self, kind: HitKind, query: ScopedQuery, vector: list[float] | None,
                answer: CachedAnswer | None = None, entry_id: str = "", similarity: float = 0.0,
                shadow: bool = False) -> LookupResult:
        if kind not in (HitKind.EXACT, HitKind.SEMANTIC):
            self.counters.misses += 1
        return LookupResult(
            kind=kind, answer=answer, entry_id=entry_id, similarity=similarity,
            embedding=tuple(vector or ()), embedding_model=self.embedder.model_id if vector else "",
            embedding_cost_usd=self._embedding_cost(query.query) if vector else 0.0,
            shadow=shadow,
        )

    def _finish(self, span, result: LookupResult, verdict: str) -> LookupResult:
        span.set_attribute("costmesh.cache.hit_kind", result.kind.name.lower())
        span.set_attribute("costmesh.cache.hit", result.kind in (HitKind.EXACT, HitKind.SEMANTIC))
        span.set_attribute("costmesh.cache.similarity", result.similarity)
        if verdict:
            span.set_attribute("costmesh.cache.verifier", verdict)
        return result

    async def _embed_query(self, text: str) -> tuple[list[float] | None, object]:
        """The query's vector, and its full encoding when the verifier reads token embeddings
        (one forward pass serves the KNN search and the verifier)."""
        if not getattr(self.verifier, "needs_encoding", False):
            return await self._embed(text), None
        try:
            encoding = (await self.embedder.embed_full([text]))[0]
        except Exception as exc:  # never why a request fails
            self.counters.errors += 1
            log.error("embedding failed", error=repr(exc))
            return None, None
        return [float(x) for x in encoding.vector], encoding

    async def _embed(self, text: str) -> list[float] | None:
        try:
            return await self.embedder.embed_one(text)
        except Exception as exc:  # never why a request fails
            self.counters.errors += 1
            log.error("embedding failed", error=repr(exc))
            return None

    def _embedding_cost(self, text: str) -> float:
        if not self.embedding_usd_per_mtok:
            return 0.0
        return self._count_tokens(text) * self.embedding_usd_per_mtok / 1e6

    def _error(self, what: str, exc: Exception) -> None:
        self.counters.errors += 1
        log.warning(f"redis unavailable; {what} fails open", error=str(exc))

    # -- store ----------------------------------------------------------------------------

    async def store(self, request: StoreRequest) -> StoreResult:
        """Store the answer (when the policy lets it); raises `Overloaded` at once when saturated."""
        query = scope_query(request.scope, request.messages, request.sampling)
        with self.store_admission.slot():
            return await self._store(request, query)

    async def _store(self, request: StoreRequest, query: ScopedQuery) -> StoreResult:
        reason = self.policy.store_refusal(request.sampling, request.text, request.finish_reason,
                                           request.quality_passed, query.tenant_id, len(request.tool_calls))
        if reason:
            self.counters.stores_refused += 1
            return StoreResult(False, "", reason)
        tags = tuple(sorted({t.strip() for t in request.tags if t.strip()}))
        answer = CachedAnswer(request.text, request.model, request.usage, request.baseline_cost_usd,
                              query.tenant_id, tags, request.finish_reason, request.tool_calls,
                              exact_only=bool(request.tool_calls) or query.exact_only)
        # The caller's vector (the lookup's) is reused only if it is this cache's model's: during a
        # rolling change of model another one's vectors may have the same length.
        reusable = len(request.embedding) == self.embedder.dims and request.embedding_model == self.embedder.model_id
        vector = list(request.embedding) if reusable else None
        if vector is None:
            vector = await self._embed(query.query)
            if vector is None:
                self.counters.stores_dropped += 1
                return StoreResult(False, query.entry_id, "embedding failed")
        ttl = self.policy.ttl_for(query.tenant_id, request.ttl_seconds)
        try:
            entry_id = await self._redis(lambda: self.semantic.store(query, answer, vector, ttl))
        except RedisUnavailable as exc:
            self.counters.stores_dropped += 1
            self._error("store", exc)
            return StoreResult(False, query.entry_id, f"cache unavailable: {exc}")
        self.counters.stores += 1
        return StoreResult(True, entry_id)

    # -- shadow checks --------------------------------------------------------------------

    async def judge_shadow(self, request: ShadowRequest) -> ShadowResult:
        """Judge a shadow check (unless the caller did), count the verdict for the tenant (which
        may move its threshold), and keep the labelled pair when the tenant consented to that.
        Raises PermissionDenied for a tenant that has not consented to shadow checks, and
        Unavailable when Redis cannot count the verdict."""
        query = scope_query(request.scope, request.messages, Sampling())
        tenant = query.tenant_id
        if self.policy.shadow_rate(tenant) <= 0:
            raise PermissionDenied(f"tenant {tenant!r} has not consented to shadow checks "
                                   "(shadow_rate in COSTMESH_CACHE_TENANT_POLICIES)")
        if not request.verdict and (not request.served_text.strip() or not request.fresh_text.strip()):
            raise InvalidRequest("served_text and fresh_text: both answers are required unless verdict is set")
        if request.verdict not in ("", "same", "different"):
            raise InvalidRequest(f"verdict: {request.verdict!r} is not same or different")
        if request.verdict:
            same, score, judge, tokens = request.verdict == "same", float(request.verdict == "same"), "caller", 0
        else:
            judged = await self.judge.judge(request.served_text, request.fresh_text)
            same, score, judge, tokens = judged.same, judged.score, judged.judge, judged.tokens
        try:
            live = await self.shadow.record(tenant, different=not same)
        except RedisUnavailable as exc:
            self.counters.errors += 1
            raise Unavailable(f"shadow verdict not counted: {exc}") from exc
        if self.policy.keeps_shadow_pairs(tenant) and request.entry_id:
            await self._keep_pair(request, query, same, score, judge)
        cost = tokens * self.embedding_usd_per_mtok / 1e6 if self.embedding_usd_per_mtok else 0.0
        return ShadowResult(same, score, judge, cost, live)

    async def _keep_pair(self, request: ShadowRequest, query: ScopedQuery, same: bool, score: float,
                         judge: str) -> None:
        """The labelled pair (the question, the served entry's question, the verdict); lost, not
        raised, when Redis fails or the entry is gone."""
        try:
            cached = await self._redis(lambda: self.client.hget(self.semantic.key(request.entry_id), "prompt"),
                                       admin=True)
            if cached is None:
                return
            await self.shadow.keep_pair(query.tenant_id, {
                "ts": round(time.time(), 3), "query": query.query,
                "cached_query": cached.decode() if isinstance(cached, bytes) else cached,
                "same": same, "judge": judge, "score": round(score, 4),
                "similarity": round(request.similarity, 4), "entry_id": request.entry_id,
            })
        except RedisUnavailable as exc:
            self._error("shadow pair", exc)

    # -- invalidate -----------------------------------------------------------------------

    async def invalidate(self, request: InvalidateRequest) -> int:
        """Remove the tenant's entries carrying any of the tags, of a session, the entry, or all.

        Unlike lookups this does not fail open: a caller must know its invalidation did not
        happen, so Redis trouble raises `Unavailable`.
        """
        if not request.tenant_id:
            raise InvalidRequest("tenant_id: required")
        tags = [t.strip() for t in request.tags if t.strip()]
        if not (request.all or tags or request.entry_id or request.session_id):
            raise InvalidRequest("one of tags, entry_id, session_id or all is required")
        tenant = tenant_filter(request.tenant_id)
        try:
            if request.all:
                return await self._redis(lambda: self.semantic.delete_matching(tenant), admin=True)
            removed = 0
            if tags:
                expression = tenant & (Tag("tags") == [tag_value(t) for t in tags])
                removed += await self._redis(lambda: self.semantic.delete_matching(expression), admin=True)
            if request.session_id:
                expression = tenant & (Tag("session") == tag_value(request.session_id))
                removed += await self._redis(lambda: self.semantic.delete_matching(expression), admin=True)
            if request.entry_id:
                owner = await self._redis(lambda: self.semantic.owner_of(request.entry_id), admin=True)
                if owner == tag_value(request.tenant_id):
                    removed += await self._redis(lambda: self.semantic.delete_ids([request.entry_id]), admin=True)
            return removed
        except RedisUnavailable as exc:
            self.counters.errors += 1
            raise Unavailable(f"cache invalidation did not run: {exc}") from exc

    # -- stats ----------------------------------------------------------------------------

    async def stats(self, tenant_id: str = "") -> CacheStats:
        """The counters; with `tenant_id`, that tenant's live false-hit estimate too (None when
        Redis cannot say)."""
        c = self.counters
        entries, evictions, bytes_per_entry, available = 0, 0, 0.0, True
        try:
            entries, evictions, bytes_per_entry = await self._redis(self._redis_stats, admin=True)
        except RedisUnavailable:
            available = False
        live = None
        if tenant_id and available:
            try:
                live = await self.shadow.estimate(tenant_id)
            except RedisUnavailable:
                live = None
        return CacheStats(
            lookups=c.lookups, exact_hits=c.exact_hits, semantic_hits=c.semantic_hits, misses=c.misses,
            errors=c.errors, stores=c.stores, stores_refused=c.stores_refused, stores_dropped=c.stores_dropped,
            entries=entries, hit_rate=c.hit_rate, avg_hit_similarity=c.avg_hit_similarity,
            verifier_rejections=c.verifier_rejections, evictions=evictions, bytes_per_entry=bytes_per_entry,
            embedding_model=self.embedder.model_id, index_name=self.index_name, redis_available=available,
            not_cacheable=c.not_cacheable, lookups_busy=self.lookup_admission.refused,
            stores_busy=self.store_admission.refused, shadow_drawn=c.shadow_drawn, live=live,
            **self._operating_point(),
        )

    def _operating_point(self) -> dict:
        point = getattr(self.verifier, "point", None)
        out = {"verifier": self.verifier.name}
        if point is not None:
            out.update(max_false_hit_rate=self.verifier.max_false_hit_rate, verifier_threshold=point.threshold,
                       calibrated_false_hit_rate=point.false_hit_rate, calibrated_precision=point.quora_precision,
                       calibrated_recall=point.quora_recall, calibrated_trap_recall=point.traps_recall)
        return out

    async def _redis_stats(self) -> tuple[int, int, float]:
        info = await self.semantic.info()
        entries = int(info.get("num_docs", 0))
        evictions = int((await self.client.info("stats")).get("evicted_keys", 0))
        if not entries:
            return 0, evictions, 0.0
        keys = []
        async for key in self.client.scan_iter(match=f"{self.index_name}:*", count=200):
            keys.append(key)
            if len(keys) >= MEMORY_SAMPLE:
                break
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.memory_usage(key, samples=0)  # every field: the default samples 5 and extrapolates
            sizes = [size or 0 for size in await pipe.execute()]
        per_key = sum(sizes) / len(sizes) if sizes else 0.0
        # The index's parts (FT.INFO), each shared out over the documents; the vector index's
        # own copies of the vectors included (its blocks are preallocated: a few empty slots).
        index_mb = sum(float(info.get(part, 0) or 0) for part in INDEX_MEMORY_PARTS)
        return entries, evictions, per_key + index_mb * 1024 * 1024 / entries
