"""`ProviderClient` over the ProviderService gRPC stub; gRPC errors become costmesh errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import grpc

from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.convert import (
    cost_from_pb,
    messages_to_pb,
    output_spec_to_pb,
    sampling_to_pb,
    tool_calls_from_pb,
    usage_from_pb,
)
from costmesh.domain import Generation
from costmesh.rpc.status import from_rpc_error

from .provider_client import ProviderCall

Request = TypeVar("Request", provider_pb2.GenerateRequest, provider_pb2.StreamGenerateRequest)


def _request(call: ProviderCall, message_type: type[Request] = provider_pb2.GenerateRequest) -> Request:
    request = message_type(
        model=call.model,
        messages=messages_to_pb(call.messages),
        sampling=sampling_to_pb(call.sampling),
        tenant_id=call.tenant_id,
    )
    tools, response_format = output_spec_to_pb(call.output)  # a plain spec writes nothing
    request.tools.CopyFrom(tools)
    request.response_format.CopyFrom(response_format)
    return request


def _generation(response: provider_pb2.GenerateResponse, text: str | None = None) -> Generation:
    return Generation(
        text=response.text if text is None else text,
        model=response.model,
        provider=response.provider,
        usage=usage_from_pb(response.usage),
        cost=cost_from_pb(response.cost),
        finish_reason=response.finish_reason or "stop",
        provider_request_id=response.provider_request_id,
        tool_calls=tool_calls_from_pb(response.tool_calls),
    )


class GrpcProviderClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = provider_pb2_grpc.ProviderServiceStub(channel)

    async def generate(self, call: ProviderCall, timeout_s: float) -> Generation:
        try:
            response = await self._stub.Generate(_request(call), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return _generation(response)

    async def stream(self, call: ProviderCall, timeout_s: float) -> AsyncIterator[str | Generation]:
        rpc = self._stub.StreamGenerate(_request(call, provider_pb2.StreamGenerateRequest), timeout=timeout_s)
        try:
            async for event in rpc:
                if event.WhichOneof("event") == "text_delta":
                    yield event.text_delta
                elif event.WhichOneof("event") == "final":
                    yield _generation(event.final, text="")
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            rpc.cancel()
