"""Batch jobs end to end: cache first, then classify and plan, then the providers' batch APIs.

Submit: the batch's shape is checked (tenant, request ids, models, the documented limits; each
request's content is validated by the gateway before it forwards) and every request looked up in
the semantic cache; hits are answered at once. The rest are classified and planned by the
router (`RouterService.Plan`: the first model of its cascade for the classified tier, clamped by
the request's routing policy, among the providers with a batch API; a pinned model as is),
grouped per provider (and per model for OpenAI, whose batch files take one model), checked
against the providers' limits by the providers service, recorded in Redis, then submitted.

Poll (`poll_once`, run in a loop by the service): each active job's provider batches that ended
are read back, every answer priced at the batch discount, stored in the cache, and written to
Redis; a job ends when all its provider batches have. Nothing lives only in memory, so a
restarted service carries on where the last one stopped, and replicas share the work through
each job's lease.

No gRPC here: the cache, classifier, router and providers are reached through `MeshCalls` and
`ProviderBatches` (see `clients`), and their failures arrive as costmesh domain errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog
from opentelemetry import trace

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.provider.v1 import provider_pb2
from costmesh.api.router.v1 import router_pb2
from costmesh.batch_limits import LIMITS, MAX_REQUESTS, check_size
from costmesh.cache_answers import HIT_STATUS, cache_scope, hit_response
from costmesh.catalog import Catalog
from costmesh.errors import CostmeshError, InvalidRequest, NotFound, Unavailable

from .answers import answered, store_request, trace_answer
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
from .records import BatchResult

log = structlog.get_logger()

SUBMIT_GRACE_S = 600.0  # a job still "submitting" after this lost its service mid-submission
LOCK_WAIT_S = 10.0


class MeshCalls(Protocol):
    """The cache, the classifier and the router (over gRPC in `clients.MeshClients`)."""

    async def lookup(self, request: cache_pb2.LookupRequest, timeout: float) -> cache_pb2.LookupResponse: ...

    async def store(self, request: cache_pb2.StoreRequest, timeout: float) -> cache_pb2.StoreResponse: ...

    async def classify(
        self, request: classifier_pb2.ClassifyRequest, timeout: float
    ) -> classifier_pb2.ClassifyResponse: ...

    async def plan(self, request: router_pb2.PlanRequest, timeout: float) -> router_pb2.PlanResponse: ...


class ProviderBatches(Protocol):
    """The providers' batch APIs (the providers service's batch RPCs, in `clients.ProviderBatchClient`)."""

    async def providers(self) -> frozenset[str]: ...

    async def check(self, requests: list[provider_pb2.BatchRequestItem]) -> None: ...

    async def submit(self, requests: list[provider_pb2.BatchRequestItem], label: str) -> tuple[str, str]: ...

    async def ended(self, provider: str, batch_id: str) -> bool: ...

    async def results(self, provider: str, batch_id: str, models: Mapping[str, str]) -> list[BatchResult]: ...

    async def cancel(self, provider: str, batch_id: str) -> None: ...


@dataclass(frozen=True)
class BatchSettings:
    poll_interval_s: float = 30.0
    cache_timeout_s: float = 2.0
    classify_timeout_s: float = 1.0
    plan_timeout_s: float = 5.0
    fallback_tier: int = common.TIER_MODERATE  # when the classifier cannot be reached
    concurrency: int = 32  # cache lookups and classifications in flight at submission


class BatchEngine:
    def __init__(
        self,
        store: JobStore,
        clients: MeshCalls,
        batches: ProviderBatches,
        catalog: Catalog,
        settings: BatchSettings | None = None,
        clock: Callable[[], float] = time.time,
        tracer: trace.Tracer | None = None,
    ):
        self._store = store
        self._clients = clients
        self._batches = batches
        self._catalog = catalog
        self.settings = settings or BatchSettings()
        self._clock = clock
        self._tracer = tracer or trace.get_tracer("costmesh.batches")

    # -- submit -------------------------------------------------------------------------------

    async def submit(self, request: gw.SubmitBatchRequest) -> tuple[Job, list[Item]]:
        requests = self._validated(request)
        providers = await self._batches.providers()
        self._precheck(requests, providers)
        gate = asyncio.Semaphore(self.settings.concurrency)
        plans: dict[tuple[int, int], asyncio.Future] = {}  # one router plan per (tier, max_tier)

        async def plan(index: int, req: gw.CompleteRequest) -> Item:
            async with gate:
                return await self._plan(index, req, providers, plans)

        items = list(await asyncio.gather(*(plan(i, r) for i, r in enumerate(requests))))
        groups = self._groups(items)
        payloads = {}
        for key, members in groups.items():
            check_size(key[0], len(members), 0)  # counted here; the bytes by the providers service
            payloads[key] = [self._batch_item(item, requests[item.index]) for item in members]
        for key in groups:  # every provider batch checked before any is sent: all or nothing
            await self._batches.check(payloads[key])
        job = Job.new(request.tenant_id, len(items), self._clock())
        if not groups:  # every request answered from the cache: nothing to send
            job.status, job.ended_at = ENDED, self._clock()
        await self._store.create(job, items)
        if job.status == ENDED:
            await self._store.save_job(job)  # starts its retention clock
        for (provider, model), members in groups.items():
            try:
                _, batch_id = await self._batches.submit(payloads[(provider, model)], job.id)
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
        """The batch's shape; each request's content was validated by the gateway."""
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
            if not req.messages:
                raise InvalidRequest(f"requests[{i}].messages: at least one message is required")
            if req.routing.model:
                self._catalog.model(req.routing.model)  # InvalidRequest naming the model when unknown
            out.append(req)
        return out

    def _precheck(self, requests: list[gw.CompleteRequest], providers: frozenset[str]) -> None:
        """Requests pinned to a model: refuse one no batch API serves, or a provider batch over its
        limits, before any lookup."""
        pinned: dict[tuple[str, str], tuple[int, int]] = {}
        for i, req in enumerate(requests):
            if req.routing.model:
                spec = self._catalog.model(req.routing.model)
                if spec.provider not in providers:
                    raise InvalidRequest(
                        f"requests[{i}].routing.model: {spec.id!r} is served by {spec.provider!r}, which has no "
                        f"batch API configured here (batch providers: {sorted(providers)})"
                    )
                key = (spec.provider, spec.id if spec.provider == "openai" else "")  # OpenAI: a file per model
                count, size = pinned.get(key, (0, 0))
                pinned[key] = (count + 1, size + req.ByteSize())
        for (provider, _), (count, size) in pinned.items():
            if provider in LIMITS:
                check_size(provider, count, size)

    async def _plan(
        self,
        index: int,
        req: gw.CompleteRequest,
        providers: frozenset[str],
        plans: dict[tuple[int, int], asyncio.Future],
    ) -> Item:
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
        if req.routing.model:
            spec = self._catalog.model(req.routing.model)
            item.provider, item.model, item.tier = spec.provider, spec.id, int(spec.tier)
            return item
        classified, score = await self._classify(req, lookup)
        tier = max(classified, req.routing.min_tier) if req.routing.min_tier else classified
        if req.routing.max_tier:
            tier = min(tier, req.routing.max_tier)
        key = (tier, req.routing.max_tier)
        if key not in plans:
            plans[key] = asyncio.ensure_future(self._clients.plan(
                router_pb2.PlanRequest(tier=tier, max_tier=req.routing.max_tier, providers=sorted(providers)),
                self.settings.plan_timeout_s,
            ))
        planned = await asyncio.shield(plans[key])
        item.provider, item.model, item.tier = planned.provider, planned.model, planned.tier
        item.classified_tier, item.score = classified, score
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

    async def _classify(self, req: gw.CompleteRequest, lookup: cache_pb2.LookupResponse) -> tuple[int, float]:
        try:
            classified = await self._clients.classify(
                classifier_pb2.ClassifyRequest(messages=req.messages, embedding=lookup.embedding),
                self.settings.classify_timeout_s,
            )
            return classified.tier, classified.score
        except CostmeshError as exc:
            log.warning("batch classify failed; using the fallback tier", error=str(exc))
            return self.settings.fallback_tier, 0.5

    @staticmethod
    def _groups(items: list[Item]) -> dict[tuple[str, str], list[Item]]:
        groups: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            if item.status != PENDING:
                continue
            model = item.model if item.provider == "openai" else ""  # OpenAI: one model per batch file
            groups.setdefault((item.provider, model), []).append(item)
        return groups

    @staticmethod
    def _batch_item(item: Item, req: gw.CompleteRequest) -> provider_pb2.BatchRequestItem:
        return provider_pb2.BatchRequestItem(
            custom_id=item.custom_id, model=item.model, messages=req.messages, sampling=req.sampling,
            tenant_id=req.tenant_id, tools=req.tools, response_format=req.response_format,
        )

    # -- get / cancel -------------------------------------------------------------------------

    async def get(self, batch_id: str, tenant_id: str) -> tuple[Job, list[Item]]:
        job = await self._owned(batch_id, tenant_id)
        return job, await self._store.items(job.id)

    async def cancel(self, batch_id: str, tenant_id: str) -> tuple[Job, list[Item]]:
        await self._owned(batch_id, tenant_id)
        lease = await self._store.lock(batch_id, wait_s=LOCK_WAIT_S)  # never between a poller's read and write
        if lease is None:
            raise Unavailable(f"batch {batch_id} is busy; try again")
        try:
            job = await self._store.job(batch_id)
            if job.status in (IN_PROGRESS, SUBMITTING):
                for pb in job.provider_batches:
                    if not pb.done:
                        try:
                            await self._batches.cancel(pb.provider, pb.batch_id)
                        except CostmeshError as exc:  # e.g. it ended upstream meanwhile: the poller reads it
                            log.warning("provider batch cancel failed", batch=job.id, provider_batch=pb.batch_id,
                                        error=str(exc))
                job.status = CANCELING
                await self._store.save_job(job)
        finally:
            await lease.release()
        return job, await self._store.items(job.id)

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
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a cancel that a Redis call swallowed: stop now
                raise asyncio.CancelledError
            await asyncio.sleep(self.settings.poll_interval_s)

    async def poll_once(self) -> int:
        """Read back every provider batch that ended; returns how many jobs ended this round."""
        ended = 0
        for job_id in await self._store.active():
            lease = await self._store.lock(job_id)
            if lease is None:
                continue  # another replica has it
            try:
                ended += await self._advance(job_id)
            except CostmeshError as exc:
                log.warning("batch job poll failed", batch=job_id, error=str(exc))
            except Exception:  # one broken job must not stop the others
                log.exception("batch job poll crashed", batch=job_id)
            finally:
                await lease.release()
        return ended

    async def _advance(self, job_id: str) -> int:
        job = await self._store.job(job_id)
        if job.status == ENDED:
            await self._store.save_job(job)  # off the active set
            return 0
        items: list[Item] | None = None
        if job.status == SUBMITTING:
            if self._clock() - job.created_at < SUBMIT_GRACE_S:
                return 0  # its submission is still going out
            items = await self._store.items(job.id)  # that replica died mid-submission: what never left fails
            unsent = [i for i in items if i.status == PENDING and not i.provider_batch]
            for item in unsent:
                item.status, item.error = ERRORED, "submission interrupted (batches service restarted); submit again"
            await self._store.save_items(job.id, unsent)
            job.status = IN_PROGRESS
        for pb in job.provider_batches:
            if pb.done:
                continue
            try:
                if not await self._batches.ended(pb.provider, pb.batch_id):
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
            with self._tracer.start_as_current_span(
                "costmesh.batch.results",
                attributes={"costmesh.batch_id": job.id, "costmesh.provider_batch_id": pb.batch_id,
                            "gen_ai.system": pb.provider, "costmesh.requests": len(members)},
            ):
                results = await self._batches.results(pb.provider, pb.batch_id,
                                                      {cid: i.model for cid, i in members.items()})
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
                response = answered(self._catalog, item, result.generation)
                item.response = response.SerializeToString()
                trace_answer(self._tracer, self._catalog, job_id, item, result.generation, response, req.tenant_id)
                if item.cache_status == gw.CACHE_STATUS_MISS:
                    await self._store_answer(store_request(req, result.generation, response))

    async def _store_answer(self, store: cache_pb2.StoreRequest) -> None:
        try:
            await self._clients.store(store, self.settings.cache_timeout_s)
        except CostmeshError as exc:
            log.warning("batch answer not cached", error=str(exc))
