"""Batch jobs end to end: cache first, then classify and route, then the providers' batch APIs.

Submit: every request is validated (the interactive rules, field names prefixed with
`requests[i]`) and looked up in the semantic cache; hits are answered at once. The rest are
classified and routed the way the router starts its cascade (the classified tier, clamped by
the request's routing policy; the tier's first model whose provider has a batch API here; a
pinned model as is), grouped per provider (and per model for OpenAI, whose batch files take
one model), checked against the documented limits, recorded in Redis, then submitted.

Poll (`poll_once`, run in a loop by the gateway): each active job's provider batches that
ended are read back, every answer priced at the batch discount, stored in the cache, and
written to Redis; a job ends when all its provider batches have. Nothing lives only in
memory, so a restarted gateway carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog
from opentelemetry import trace

from costmesh import convert
from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog, ModelSpec, Tier
from costmesh.domain import Generation, Usage
from costmesh.errors import CostmeshError, InvalidRequest, NotFound, Unavailable
from costmesh.gateway.cache_answers import HIT_STATUS, cache_scope, hit_response
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.validation import Limits, validate
from costmesh.pricing import list_cost_of
from costmesh.services.providers.base import record_on_span

from .jobs import (
    CANCELING,
    ENDED,
    ERRORED,
    IN_PROGRESS,
    PENDING,
    SUBMITTING,
    SUCCEEDED,
    Item,
    Job,
    JobStore,
    ProviderBatch,
)
from .limits import LIMITS, MAX_REQUESTS, check_size
from .provider_batches import BatchCall, BatchResult, ProviderBatchAPI

log = structlog.get_logger()

DEFAULT_TIER = Tier.SIMPLE  # as the router, when nothing says otherwise
SUBMIT_GRACE_S = 600.0  # a job still "submitting" after this lost its gateway mid-submission
LOCK_WAIT_S = 10.0


@dataclass(frozen=True)
class BatchSettings:
    poll_interval_s: float = 30.0
    cache_timeout_s: float = 2.0
    classify_timeout_s: float = 1.0
    fallback_tier: int = common.TIER_MODERATE  # when the classifier cannot be reached
    concurrency: int = 32  # cache lookups and classifications in flight at submission
    limits: Limits = field(default_factory=Limits)


class BatchEngine:
    def __init__(
        self,
        store: JobStore,
        clients: MeshClients,
        catalog: Catalog,
        apis: Mapping[str, ProviderBatchAPI],
        settings: BatchSettings | None = None,
        clock: Callable[[], float] = time.time,
        tracer: trace.Tracer | None = None,
    ):
        self._store = store
        self._clients = clients
        self._catalog = catalog
        self._apis = dict(apis)
        self.settings = settings or BatchSettings()
        self._clock = clock
        self._tracer = tracer or trace.get_tracer("costmesh.gateway.batch")

    # -- submit -------------------------------------------------------------------------------

    async def submit(self, request: gw.SubmitBatchRequest) -> tuple[Job, list[Item]]:
        requests = self._validated(request)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def plan(index: int, req: gw.CompleteRequest) -> Item:
            async with gate:
                return await self._plan(index, req)

        items = list(await asyncio.gather(*(plan(i, r) for i, r in enumerate(requests))))
        groups = self._groups(items)
        payloads = {}
        for key, members in groups.items():
            api = self._apis[key[0]]
            payloads[key] = api.payload([self._call(item, requests[item.index]) for item in members])
            check_size(key[0], payloads[key].requests, payloads[key].size_bytes)
        job = Job.new(request.tenant_id, len(items), self._clock())
        if not groups:  # every request answered from the cache (or refused): nothing to send
            job.status, job.ended_at = ENDED, self._clock()
        await self._store.create(job, items)
        if job.status == ENDED:
            await self._store.save_job(job)  # starts its retention clock
        for (provider, model), members in groups.items():
            try:
                batch_id = await self._apis[provider].submit(payloads[(provider, model)], job.id)
            except CostmeshError as exc:
                log.warning("batch submission failed", provider=provider, error=str(exc), batch=job.id)
                for item in members:
                    item.status, item.error = ERRORED, f"{provider}: submission failed: {exc}"
                await self._store.save_items(job.id, members)
                continue
            for item in members:
                item.provider_batch = batch_id
            await self._store.save_items(job.id, members)
            job.provider_batches.append(ProviderBatch(provider, batch_id, model))
            await self._store.save_job(job)
        if job.status != ENDED:
            if job.provider_batches:
                job.status = IN_PROGRESS
            else:
                job.status, job.ended_at = ENDED, self._clock()
            await self._store.save_job(job)
        log.info("batch submitted", batch=job.id, requests=len(items), provider_batches=len(job.provider_batches),
                 cache_hits=sum(1 for i in items if i.status == SUCCEEDED))
        return job, items

    def _validated(self, request: gw.SubmitBatchRequest) -> list[gw.CompleteRequest]:
        if not request.tenant_id.strip():
            raise InvalidRequest("tenant_id: required")
        if not request.requests:
            raise InvalidRequest("requests: at least one request is required")
        if len(request.requests) > MAX_REQUESTS:
            raise InvalidRequest(
                f"requests: {len(request.requests)} requests; a batch takes at most {MAX_REQUESTS:,} "
                "(Anthropic's limit; OpenAI's is 50,000)"
            )
        seen: set[str] = set()
        out = []
        for i, original in enumerate(request.requests):
            req = gw.CompleteRequest()
            req.CopyFrom(original)
            if req.tenant_id and req.tenant_id != request.tenant_id:
                raise InvalidRequest(f"requests[{i}].tenant_id: {req.tenant_id!r} is not the batch's tenant")
            req.tenant_id = request.tenant_id
            if not req.request_id:
                raise InvalidRequest(f"requests[{i}].request_id: required (it identifies the answer in the batch)")
            if req.request_id in seen:
                raise InvalidRequest(f"requests[{i}].request_id: {req.request_id!r} appears twice")
            seen.add(req.request_id)
            try:
                validate(req, self.settings.limits)
            except InvalidRequest as exc:
                raise InvalidRequest(f"requests[{i}].{exc}") from None
            if req.routing.model:
                self._catalog.model(req.routing.model)  # InvalidRequest naming the model when unknown
            out.append(req)
        self._precheck(out)
        return out

    def _precheck(self, requests: list[gw.CompleteRequest]) -> None:
        """Requests pinned to a model: refuse a provider batch over its limits before any lookup."""
        pinned: dict[tuple[str, str], tuple[int, int]] = {}
        for req in requests:
            if req.routing.model:
                provider = self._catalog.model(req.routing.model).provider
                key = (provider, req.routing.model if provider == "openai" else "")  # OpenAI: a file per model
                count, size = pinned.get(key, (0, 0))
                pinned[key] = (count + 1, size + req.ByteSize())
        for (provider, _), (count, size) in pinned.items():
            if provider in LIMITS:
                check_size(provider, count, size)

    async def _plan(self, index: int, req: gw.CompleteRequest) -> Item:
        item = Item(index, req.request_id, req.SerializeToString())
        lookup = cache_pb2.LookupResponse()
        if req.cache.bypass:
            item.cache_status = gw.CACHE_STATUS_BYPASSED
        else:
            lookup = await self._lookup(req)
            item.embedding_usd = lookup.embedding_cost_usd
            if lookup.kind in HIT_STATUS:
                item.status, item.cache_status = SUCCEEDED, HIT_STATUS[lookup.kind]
                item.response = hit_response(req.request_id, lookup).SerializeToString()
                return item
            miss = lookup.kind != cache_pb2.HIT_KIND_UNAVAILABLE
            item.cache_status = gw.CACHE_STATUS_MISS if miss else gw.CACHE_STATUS_UNAVAILABLE
        spec, tier, classified, score = await self._route(req, lookup)
        item.provider, item.model, item.tier, item.classified_tier, item.score = (
            spec.provider, spec.id, int(tier), int(classified), score
        )
        return item

    async def _lookup(self, req: gw.CompleteRequest) -> cache_pb2.LookupResponse:
        try:
            return await self._clients.lookup(
                cache_pb2.LookupRequest(scope=cache_scope(req), messages=req.messages, sampling=req.sampling),
                self.settings.cache_timeout_s,
            )
        except CostmeshError as exc:
            log.warning("batch cache lookup failed; answering uncached", error=str(exc))
            return cache_pb2.LookupResponse(kind=cache_pb2.HIT_KIND_UNAVAILABLE)

    async def _route(
        self, req: gw.CompleteRequest, lookup: cache_pb2.LookupResponse
    ) -> tuple[ModelSpec, Tier, int, float]:
        """The model the router would start with: pinned, or the classified tier's first batch-capable one."""
        if req.routing.model:
            spec = self._catalog.model(req.routing.model)
            if spec.provider not in self._apis:
                raise InvalidRequest(
                    f"routing.model: {spec.id!r} is served by {spec.provider!r}, which has no batch API configured "
                    f"here (batch providers: {sorted(self._apis)})"
                )
            return spec, spec.tier, 0, 0.0
        try:
            classified = await self._clients.classify(
                classifier_pb2.ClassifyRequest(messages=req.messages, embedding=lookup.embedding),
                self.settings.classify_timeout_s,
            )
            tier_value, score = classified.tier, classified.score
        except CostmeshError as exc:
            log.warning("batch classify failed; using the fallback tier", error=str(exc))
            tier_value, score = self.settings.fallback_tier, 0.5
        classified_tier = tier_value
        if req.routing.min_tier:
            tier_value = max(tier_value, req.routing.min_tier)
        if req.routing.max_tier:
            tier_value = min(tier_value, req.routing.max_tier)
        tier = Tier(tier_value) if tier_value else DEFAULT_TIER
        for candidate in [t for t in Tier if t >= tier] + [t for t in reversed(Tier) if t < tier]:
            for spec in self._catalog.tier_models(candidate):
                if spec.provider in self._apis:
                    return spec, candidate, classified_tier, score
        raise Unavailable(f"no model with a batch API configured here (batch providers: {sorted(self._apis)})")

    @staticmethod
    def _groups(items: list[Item]) -> dict[tuple[str, str], list[Item]]:
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            if item.status != PENDING:
                continue
            model = item.model if item.provider == "openai" else ""  # OpenAI: one model per batch file
            groups.setdefault((item.provider, model), []).append(item)
        return groups

    def _call(self, item: Item, req: gw.CompleteRequest) -> BatchCall:
        return BatchCall(
            custom_id=item.custom_id,
            model=self._catalog.model(item.model),
            messages=convert.messages_from_pb(req.messages),
            sampling=convert.sampling_from_pb(req.sampling),
            tenant_id=req.tenant_id,
        )

    # -- get / cancel -------------------------------------------------------------------------

    async def get(self, batch_id: str, tenant_id: str) -> tuple[Job, list[Item]]:
        job = await self._owned(batch_id, tenant_id)
        return job, await self._store.items(job.id)

    async def cancel(self, batch_id: str, tenant_id: str) -> tuple[Job, list[Item]]:
        await self._owned(batch_id, tenant_id)
        token = await self._lock(batch_id)  # never between the poller's read and write of the job
        try:
            job = await self._store.job(batch_id)
            if job.status in (IN_PROGRESS, SUBMITTING):
                for pb in job.provider_batches:
                    if not pb.done:
                        try:
                            await self._apis[pb.provider].cancel(pb.batch_id)
                        except CostmeshError as exc:  # e.g. it ended upstream meanwhile: the poller reads it
                            log.warning("provider batch cancel failed", batch=job.id, provider_batch=pb.batch_id,
                                        error=str(exc))
                job.status = CANCELING
                await self._store.save_job(job)
        finally:
            await self._store.unlock(batch_id, token)
        return job, await self._store.items(job.id)

    async def _lock(self, job_id: str) -> str:
        deadline = self._clock() + LOCK_WAIT_S
        while (token := await self._store.lock(job_id)) is None:
            if self._clock() > deadline:
                raise Unavailable(f"batch {job_id} is busy; try again")
            await asyncio.sleep(0.05)
        return token

    async def _owned(self, batch_id: str, tenant_id: str) -> Job:
        if not batch_id:
            raise InvalidRequest("batch_id: required")
        if not tenant_id:
            raise InvalidRequest("tenant_id: required")
        job = await self._store.job(batch_id)
        if job.tenant_id != tenant_id:
            raise NotFound(f"batch_id: no batch {batch_id!r}")  # another tenant's batch does not exist for you
        return job

    # -- poll ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled; a failed round is logged and the next one tries again."""
        while True:
            try:
                await self.poll_once()
            except CostmeshError as exc:
                log.warning("batch poll failed", error=str(exc))
            except Exception:  # the poller must outlive any one bad round
                log.exception("batch poll crashed; retrying next round")
            await asyncio.sleep(self.settings.poll_interval_s)

    async def poll_once(self) -> int:
        """Read back every provider batch that ended; returns how many jobs ended this round."""
        ended = 0
        for job_id in await self._store.active():
            token = await self._store.lock(job_id)
            if token is None:
                continue  # another gateway replica has it
            try:
                ended += await self._advance(job_id)
            except CostmeshError as exc:
                log.warning("batch job poll failed", batch=job_id, error=str(exc))
            except Exception:  # one broken job must not stop the others
                log.exception("batch job poll crashed", batch=job_id)
            finally:
                await self._store.unlock(job_id, token)
        return ended

    async def _advance(self, job_id: str) -> int:
        job = await self._store.job(job_id)
        if job.status == ENDED:
            await self._store.save_job(job)  # off the active set
            return 0
        items: list[Item] | None = None
        if job.status == SUBMITTING:
            if self._clock() - job.created_at < SUBMIT_GRACE_S:
                return 0  # its gateway is still sending it out
            items = await self._store.items(job.id)  # that gateway died mid-submission: what never left fails
            unsent = [i for i in items if i.status == PENDING and not i.provider_batch]
            for item in unsent:
                item.status, item.error = ERRORED, "submission interrupted (gateway restarted); submit again"
            await self._store.save_items(job.id, unsent)
            job.status = IN_PROGRESS
        for pb in job.provider_batches:
            if pb.done:
                continue
            if pb.provider not in self._apis:
                log.warning("provider batch API not configured here", batch=job.id, provider=pb.provider)
                continue
            try:
                if not await self._apis[pb.provider].ended(pb.batch_id):
                    continue
                lost = ""
            except NotFound as exc:  # the provider no longer knows it: its requests cannot be answered
                lost = f"{pb.provider}: batch {pb.batch_id} not found upstream: {exc}"
            items = items if items is not None else await self._store.items(job.id)
            members = {i.custom_id: i for i in items if i.provider_batch == pb.batch_id and i.status == PENDING}
            if lost:
                for item in members.values():
                    item.status, item.error = ERRORED, lost
                await self._store.save_items(job.id, list(members.values()))
                pb.done = True
                await self._store.save_job(job)
                continue
            models = {cid: self._catalog.model(i.model) for cid, i in members.items()}
            with self._tracer.start_as_current_span(
                "costmesh.batch.results",
                attributes={"costmesh.batch_id": job.id, "costmesh.provider_batch_id": pb.batch_id,
                            "gen_ai.system": pb.provider, "costmesh.requests": len(members)},
            ):
                results = await self._apis[pb.provider].results(pb.batch_id, models)
            await self._apply(job.id, members, results)
            await self._store.save_items(job.id, list(members.values()))
            pb.done = True
            await self._store.save_job(job)
        if all(pb.done for pb in job.provider_batches):
            job.status, job.ended_at = ENDED, self._clock()
            await self._store.save_job(job)
            log.info("batch ended", batch=job.id)
            return 1
        return 0

    async def _apply(self, job_id: str, members: dict[str, Item], results: list[BatchResult]) -> None:
        by_id = {r.custom_id: r for r in results}
        for custom_id, item in members.items():
            result = by_id.get(custom_id) or BatchResult(custom_id, ERRORED, error="no result from the provider")
            item.status, item.error = result.status, result.error
            if result.status == SUCCEEDED and result.generation is not None:
                req = gw.CompleteRequest.FromString(item.request)
                response = self._answered(item, result.generation)
                item.response = response.SerializeToString()
                self._trace_answer(job_id, item, result.generation, response)
                if item.cache_status == gw.CACHE_STATUS_MISS:
                    await self._store_answer(req, result.generation, response)

    def _answered(self, item: Item, generation: Generation) -> gw.CompleteResponse:
        spec = self._catalog.model(generation.model)
        listed = list_cost_of(spec, generation.usage).total_usd
        usage = generation.usage
        baseline = list_cost_of(
            self._catalog.premium, Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        ).total_usd
        cost = convert.cost_to_pb(generation.cost)
        cost.embedding_usd += item.embedding_usd
        cost.total_usd += item.embedding_usd
        before_discount = generation.cost.total_usd + generation.cost.discount_usd
        savings = common.LayerSavings(
            cache_usd=-item.embedding_usd,
            prompt_caching_usd=listed - before_discount,
            batch_usd=generation.cost.discount_usd,
            routing_usd=baseline - listed,
        )
        return gw.CompleteResponse(
            request_id=item.request_id,
            text=generation.text,
            model=generation.model,
            provider=generation.provider,
            tier=item.tier,
            classified_tier=item.classified_tier,
            complexity_score=item.score,
            cached=False,
            cache_status=item.cache_status,
            usage=convert.usage_to_pb(usage),
            cost=cost,
            baseline_cost_usd=baseline,
            saving_usd=baseline - cost.total_usd,
            savings=savings,
            attempts=1,
            finish_reason=generation.finish_reason,
        )

    def _trace_answer(self, job_id: str, item: Item, generation: Generation, response: gw.CompleteResponse) -> None:
        """One span per answered request, carrying its cost and the baseline beside it."""
        with self._tracer.start_as_current_span("costmesh.batch.answer") as span:
            record_on_span(generation, list_cost_of(self._catalog.model(generation.model), generation.usage).total_usd)
            span.set_attribute("costmesh.batch_id", job_id)
            span.set_attribute("costmesh.request_id", item.request_id)
            span.set_attribute("costmesh.tenant_id", gw.CompleteRequest.FromString(item.request).tenant_id)
            span.set_attribute("costmesh.baseline_cost_usd", response.baseline_cost_usd)
            span.set_attribute("costmesh.saving_usd", response.saving_usd)
            span.set_attribute("costmesh.cost_usd", response.cost.total_usd)

    async def _store_answer(
        self, req: gw.CompleteRequest, generation: Generation, response: gw.CompleteResponse
    ) -> None:
        store = cache_pb2.StoreRequest(
            scope=cache_scope(req),
            messages=req.messages,
            sampling=req.sampling,
            text=generation.text,
            model=generation.model,
            usage=response.usage,
            baseline_cost_usd=response.baseline_cost_usd,
            tags=req.cache.tags,
            ttl_seconds=req.cache.ttl_seconds,
            finish_reason=generation.finish_reason,
            quality_passed=True,
        )
        try:
            await self._clients.store(store, self.settings.cache_timeout_s)
        except CostmeshError as exc:
            log.warning("batch answer not cached", error=str(exc))
