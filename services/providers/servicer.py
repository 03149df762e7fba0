"""ProviderService over gRPC: protobuf <-> domain only; the work is in the registry and adapters."""

from __future__ import annotations

import grpc

from costmesh import convert, errors
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.domain import Generation
from costmesh.output_spec import Capability
from costmesh.services.providers.batch_registry import BatchRegistry
from costmesh.services.providers.batches import CANCELED, ERRORED, EXPIRED, SUCCEEDED, BatchCall, BatchResult
from costmesh.services.providers.registry import AdapterRegistry

_RESULT_STATUS = {
    SUCCEEDED: provider_pb2.BATCH_RESULT_STATUS_SUCCEEDED,
    ERRORED: provider_pb2.BATCH_RESULT_STATUS_ERRORED,
    CANCELED: provider_pb2.BATCH_RESULT_STATUS_CANCELED,
    EXPIRED: provider_pb2.BATCH_RESULT_STATUS_EXPIRED,
}
RESULTS_PER_MESSAGE = 500  # answers per StreamBatchResults message: well under the message size limit


def generation_to_pb(generation: Generation) -> provider_pb2.GenerateResponse:
    return provider_pb2.GenerateResponse(
        text=generation.text,
        model=generation.model,
        provider=generation.provider,
        usage=convert.usage_to_pb(generation.usage),
        cost=convert.cost_to_pb(generation.cost),
        finish_reason=generation.finish_reason,
        provider_request_id=generation.provider_request_id,
        tool_calls=convert.tool_calls_to_pb(generation.tool_calls),
    )


def model_to_pb(spec: ModelSpec, batch_api: bool = False) -> provider_pb2.ModelInfo:
    return provider_pb2.ModelInfo(
        id=spec.id,
        provider=spec.provider,
        tier=int(spec.tier),
        input_usd_per_mtok=spec.input,
        output_usd_per_mtok=spec.output,
        context_window=spec.context_window,
        batch_api=batch_api,
        tools=Capability.TOOLS in spec.capabilities,
        images=Capability.IMAGES in spec.capabilities,
        json_schema=Capability.JSON_SCHEMA in spec.capabilities,
    )


def batch_call(item: provider_pb2.BatchRequestItem, registry: AdapterRegistry, index: int) -> BatchCall:
    try:
        return BatchCall(
            custom_id=item.custom_id,
            model=registry.catalog.model(item.model),
            messages=convert.messages_from_pb(item.messages),
            sampling=convert.sampling_from_pb(item.sampling),
            tenant_id=item.tenant_id,
            output=convert.output_spec_from_pb(item.tools, item.response_format),
        )
    except errors.InvalidRequest as exc:
        raise errors.InvalidRequest(f"requests[{index}].{exc}") from None


def batch_result_to_pb(result: BatchResult) -> provider_pb2.BatchResult:
    out = provider_pb2.BatchResult(custom_id=result.custom_id, status=_RESULT_STATUS[result.status],
                                   error=result.error)
    if result.generation is not None:
        out.response.CopyFrom(generation_to_pb(result.generation))
    return out


MIN_TIMEOUT_S = 0.001


def _call_args(
    request: provider_pb2.GenerateRequest | provider_pb2.StreamGenerateRequest, context: grpc.aio.ServicerContext
) -> dict:
    remaining = context.time_remaining()  # None when the caller set no deadline
    return {
        "model_id": request.model,
        "messages": convert.messages_from_pb(request.messages),
        "sampling": convert.sampling_from_pb(request.sampling),
        "tenant_id": request.tenant_id,
        "output": convert.output_spec_from_pb(request.tools, request.response_format),
        "timeout_s": None if remaining is None else max(remaining, MIN_TIMEOUT_S),  # the caller's deadline
    }


class ProviderServicer(provider_pb2_grpc.ProviderServiceServicer):
    def __init__(self, registry: AdapterRegistry, batches: BatchRegistry | None = None):
        self._registry = registry
        self._batches = batches or BatchRegistry(registry.catalog, {})

    async def Generate(self, request: provider_pb2.GenerateRequest, context):
        generation = await self._registry.generate(**_call_args(request, context))
        return generation_to_pb(generation)

    async def StreamGenerate(self, request: provider_pb2.StreamGenerateRequest, context):
        async for event in self._registry.stream(**_call_args(request, context)):
            if isinstance(event, Generation):
                yield provider_pb2.StreamGenerateResponse(final=generation_to_pb(event))
            else:
                yield provider_pb2.StreamGenerateResponse(text_delta=event)

    async def ListModels(self, request, context):
        models = self._registry.served_models()
        return provider_pb2.ListModelsResponse(models=[model_to_pb(m, self._batches.serves(m)) for m in models])

    async def SubmitBatch(self, request, context):
        calls = [batch_call(item, self._registry, i) for i, item in enumerate(request.requests)]
        submitted = await self._batches.submit(calls, request.label, request.validate_only)
        return provider_pb2.SubmitBatchResponse(provider=submitted.provider, batch_id=submitted.batch_id,
                                                payload_bytes=submitted.payload_bytes,
                                                request_count=submitted.requests)

    async def GetBatch(self, request, context):
        state = await self._batches.state(request.provider, request.batch_id)
        return provider_pb2.GetBatchResponse(ended=state.ended, provider_status=state.provider_status)

    async def StreamBatchResults(self, request, context):
        results = await self._batches.results(request.provider, request.batch_id, dict(request.models))
        for start in range(0, len(results), RESULTS_PER_MESSAGE):
            chunk = results[start : start + RESULTS_PER_MESSAGE]
            yield provider_pb2.StreamBatchResultsResponse(results=[batch_result_to_pb(r) for r in chunk])

    async def CancelBatch(self, request, context):
        await self._batches.cancel(request.provider, request.batch_id)
        return provider_pb2.CancelBatchResponse()
