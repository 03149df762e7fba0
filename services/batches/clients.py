"""The batches service's calls to the mesh: the cache, classifier, router and providers over gRPC.

RPC failures come back as costmesh domain errors; provider batch results as domain objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from costmesh import convert
from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.domain import Generation
from costmesh.rpc.status import call_unary, from_rpc_error

from .jobs import CANCELED, ERRORED, EXPIRED, SUCCEEDED
from .records import BatchResult

_STATUS = {
    provider_pb2.BATCH_RESULT_STATUS_SUCCEEDED: SUCCEEDED,
    provider_pb2.BATCH_RESULT_STATUS_ERRORED: ERRORED,
    provider_pb2.BATCH_RESULT_STATUS_CANCELED: CANCELED,
    provider_pb2.BATCH_RESULT_STATUS_EXPIRED: EXPIRED,
}


class MeshClients:
    """The cache, the classifier and the router."""

    def __init__(self, cache: grpc.aio.Channel, classifier: grpc.aio.Channel, router: grpc.aio.Channel):
        self._cache = cache_pb2_grpc.CacheServiceStub(cache)
        self._classifier = classifier_pb2_grpc.ClassifierServiceStub(classifier)
        self._router = router_pb2_grpc.RouterServiceStub(router)

    async def lookup(self, request: cache_pb2.LookupRequest, timeout: float) -> cache_pb2.LookupResponse:
        return await call_unary(self._cache.Lookup, request, timeout)

    async def store(self, request: cache_pb2.StoreRequest, timeout: float) -> cache_pb2.StoreResponse:
        return await call_unary(self._cache.Store, request, timeout)

    async def classify(
        self, request: classifier_pb2.ClassifyRequest, timeout: float
    ) -> classifier_pb2.ClassifyResponse:
        return await call_unary(self._classifier.Classify, request, timeout)

    async def plan(self, request: router_pb2.PlanRequest, timeout: float) -> router_pb2.PlanResponse:
        return await call_unary(self._router.Plan, request, timeout)


class ProviderBatchClient:
    """The providers service's batch RPCs (it holds the provider keys and SDK clients)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 300.0):
        self._stub = provider_pb2_grpc.ProviderServiceStub(channel)
        self._timeout_s = timeout_s

    async def providers(self) -> frozenset[str]:
        """The providers whose batch API the providers service can reach."""
        models = await call_unary(self._stub.ListModels, provider_pb2.ListModelsRequest(), self._timeout_s)
        return frozenset(m.provider for m in models.models if m.batch_api)

    async def check(self, requests: list[provider_pb2.BatchRequestItem]) -> None:
        """Refused (InvalidRequest) when the provider payload would break its documented limits."""
        await call_unary(self._stub.SubmitBatch,
                    provider_pb2.SubmitBatchRequest(requests=requests, validate_only=True), self._timeout_s)

    async def submit(self, requests: list[provider_pb2.BatchRequestItem], label: str) -> tuple[str, str]:
        """(provider, the provider's batch id)."""
        reply = await call_unary(self._stub.SubmitBatch,
                            provider_pb2.SubmitBatchRequest(requests=requests, label=label), self._timeout_s)
        return reply.provider, reply.batch_id

    async def ended(self, provider: str, batch_id: str) -> bool:
        request = provider_pb2.GetBatchRequest(provider=provider, batch_id=batch_id)
        return (await call_unary(self._stub.GetBatch, request, self._timeout_s)).ended

    async def results(self, provider: str, batch_id: str, models: Mapping[str, str]) -> list[BatchResult]:
        request = provider_pb2.StreamBatchResultsRequest(provider=provider, batch_id=batch_id, models=dict(models))
        call = self._stub.StreamBatchResults(request, timeout=self._timeout_s)
        out: list[BatchResult] = []
        try:
            async for chunk in call:
                out.extend(_result(r) for r in chunk.results)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return out

    async def cancel(self, provider: str, batch_id: str) -> None:
        request = provider_pb2.CancelBatchRequest(provider=provider, batch_id=batch_id)
        await call_unary(self._stub.CancelBatch, request, self._timeout_s)


def _result(result: provider_pb2.BatchResult) -> BatchResult:
    generation = None
    if result.HasField("response"):
        response = result.response
        generation = Generation(
            text=response.text,
            model=response.model,
            provider=response.provider,
            usage=convert.usage_from_pb(response.usage),
            cost=convert.cost_from_pb(response.cost),
            finish_reason=response.finish_reason or "stop",
            provider_request_id=response.provider_request_id,
        )
    return BatchResult(result.custom_id, _STATUS.get(result.status, ERRORED), generation, result.error)
