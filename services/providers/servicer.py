"""ProviderService over gRPC: protobuf <-> domain only; the work is in the registry and adapters."""

from __future__ import annotations

import grpc

from costmesh import convert
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.domain import Generation
from costmesh.services.providers.registry import AdapterRegistry


def generation_to_pb(generation: Generation) -> provider_pb2.GenerateResponse:
    return provider_pb2.GenerateResponse(
        text=generation.text,
        model=generation.model,
        provider=generation.provider,
        usage=convert.usage_to_pb(generation.usage),
        cost=convert.cost_to_pb(generation.cost),
        finish_reason=generation.finish_reason,
        provider_request_id=generation.provider_request_id,
    )


def model_to_pb(spec: ModelSpec) -> provider_pb2.ModelInfo:
    return provider_pb2.ModelInfo(
        id=spec.id,
        provider=spec.provider,
        tier=int(spec.tier),
        input_usd_per_mtok=spec.input,
        output_usd_per_mtok=spec.output,
        context_window=spec.context_window,
    )


MIN_TIMEOUT_S = 0.001


def _call_args(request: provider_pb2.GenerateRequest, context: grpc.aio.ServicerContext) -> dict:
    remaining = context.time_remaining()  # None when the caller set no deadline
    return {
        "model_id": request.model,
        "messages": convert.messages_from_pb(request.messages),
        "sampling": convert.sampling_from_pb(request.sampling),
        "tenant_id": request.tenant_id,
        "timeout_s": None if remaining is None else max(remaining, MIN_TIMEOUT_S),  # the caller's deadline
    }


class ProviderServicer(provider_pb2_grpc.ProviderServiceServicer):
    def __init__(self, registry: AdapterRegistry):
        self._registry = registry

    async def Generate(self, request, context):
        generation = await self._registry.generate(**_call_args(request, context))
        return generation_to_pb(generation)

    async def StreamGenerate(self, request, context):
        async for event in self._registry.stream(**_call_args(request, context)):
            if isinstance(event, Generation):
                yield provider_pb2.StreamGenerateResponse(final=generation_to_pb(event))
            else:
                yield provider_pb2.StreamGenerateResponse(text_delta=event)

    async def ListModels(self, request, context):
        return provider_pb2.ListModelsResponse(models=[model_to_pb(m) for m in self._registry.served_models()])
