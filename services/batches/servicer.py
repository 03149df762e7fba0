"""BatchService inside the mesh: protobuf in, protobuf out; the work is in `engine`.

The same API as the gateway's public `costmesh.gateway.v1.BatchService`, which authenticates,
sets each call's tenant_id to the API key's tenant and forwards here: this service trusts the
tenant_id it is given, so only the gateway should reach it.
"""

from __future__ import annotations

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.convert import with_micro_usd
from costmesh.errors import InvalidRequest

from .engine import BatchEngine
from .jobs import (
    CANCELED,
    CANCELING,
    ENDED,
    ERRORED,
    EXPIRED,
    IN_PROGRESS,
    PENDING,
    SUBMITTING,
    SUCCEEDED,
    Item,
    Job,
)

_JOB_STATUS = {
    SUBMITTING: gw.BATCH_STATUS_IN_PROGRESS,
    IN_PROGRESS: gw.BATCH_STATUS_IN_PROGRESS,
    CANCELING: gw.BATCH_STATUS_CANCELING,
    ENDED: gw.BATCH_STATUS_ENDED,
}
_ITEM_STATUS = {
    PENDING: gw.BATCH_ITEM_STATUS_PENDING,
    SUCCEEDED: gw.BATCH_ITEM_STATUS_SUCCEEDED,
    ERRORED: gw.BATCH_ITEM_STATUS_ERRORED,
    CANCELED: gw.BATCH_ITEM_STATUS_CANCELED,
    EXPIRED: gw.BATCH_ITEM_STATUS_EXPIRED,
}
_COST_PARTS = ("input", "cache_read", "cache_write", "output", "embedding", "discount", "total")
_SAVING_LAYERS = ("cache", "routing", "prompt_caching", "batch", "inference")
# Each amount twice: the double, and the integer micro-dollars (summed exactly, never re-rounded).
_COST_FIELDS = tuple(f"{part}_{unit}" for part in _COST_PARTS for unit in ("usd", "micro_usd"))
_SAVING_FIELDS = tuple(f"{layer}_{unit}" for layer in _SAVING_LAYERS for unit in ("usd", "micro_usd"))


DEFAULT_RESULTS, MAX_RESULTS = 1_000, 10_000


def batch_to_pb(
    job: Job, items: list[Item], include_results: bool = False, offset: int = 0, limit: int = 0
) -> gw.Batch:
    """The job with its counts and the cost of what has been answered so far (all of it), and one
    page of results: `limit` (0: 1,000; at most 10,000) from `offset`, in submission order.

    Each answer's micro-dollar fields are filled from its doubles (answers stored before they
    existed included); the batch's are the exact sums of its answers'."""
    if offset < 0 or limit < 0:
        raise InvalidRequest("results_offset, results_limit: must be >= 0")
    limit = min(limit or DEFAULT_RESULTS, MAX_RESULTS)
    out = gw.Batch(
        batch_id=job.id,
        tenant_id=job.tenant_id,
        status=_JOB_STATUS[job.status],
        provider_batch_ids=[f"{pb.provider}:{pb.batch_id}" for pb in job.provider_batches],
        created_at=job.created_at,
        ended_at=job.ended_at,
    )
    counts = out.counts
    counts.total = len(items)
    for item in items:
        setattr(counts, item.status, getattr(counts, item.status) + 1)
        response = with_micro_usd(gw.CompleteResponse.FromString(item.response)) if item.response else None
        if response is not None:
            counts.cache_hits += response.cached
            _add(out.cost, response.cost, _COST_FIELDS)
            _add(out.savings, response.savings, _SAVING_FIELDS)
            out.baseline_cost_usd += response.baseline_cost_usd
            out.baseline_cost_micro_usd += response.baseline_cost_micro_usd
        if include_results and offset <= item.index < offset + limit:
            result = out.results.add(request_id=item.request_id, status=_ITEM_STATUS[item.status], error=item.error)
            if response is not None:
                result.response.CopyFrom(response)
    out.saving_usd = out.baseline_cost_usd - out.cost.total_usd
    out.saving_micro_usd = out.baseline_cost_micro_usd - out.cost.total_micro_usd
    if include_results and offset + limit < len(items):
        out.next_results_offset = offset + limit
    return out


def _add(total, part, names) -> None:
    for name in names:
        setattr(total, name, getattr(total, name) + getattr(part, name))


class BatchServicer(gateway_pb2_grpc.BatchServiceServicer):
    def __init__(self, engine: BatchEngine):
        self._engine = engine

    async def SubmitBatch(self, request: gw.SubmitBatchRequest, context) -> gw.SubmitBatchResponse:
        job, items = await self._engine.submit(request)
        return gw.SubmitBatchResponse(batch=batch_to_pb(job, items))

    async def GetBatch(self, request: gw.GetBatchRequest, context) -> gw.GetBatchResponse:
        job, items = await self._engine.get(request.batch_id, request.tenant_id)
        batch = batch_to_pb(job, items, request.include_results, request.results_offset, request.results_limit)
        return gw.GetBatchResponse(batch=batch)

    async def CancelBatch(self, request: gw.CancelBatchRequest, context) -> gw.CancelBatchResponse:
        job, items = await self._engine.cancel(request.batch_id, request.tenant_id)
        return gw.CancelBatchResponse(batch=batch_to_pb(job, items))
