"""A small async client of the gateway used by the demo, the benchmarks and the tests."""

from __future__ import annotations

import grpc

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.rpc.server import CHANNEL_OPTIONS


def build_request(
    prompt: str,
    *,
    tenant: str = "demo",
    system: str = "",
    bypass_cache: bool = False,
    max_tokens: int = 512,
    model: str = "",
) -> gw.CompleteRequest:
    messages = []
    if system:
        messages.append(common.Message(role=common.ROLE_SYSTEM, content=[common.ContentPart(text=system)]))
    messages.append(common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=prompt)]))
    return gw.CompleteRequest(
        tenant_id=tenant,
        messages=messages,
        sampling=common.SamplingParams(max_tokens=max_tokens),
        cache=gw.CachePolicy(bypass=bypass_cache),
        routing=gw.RoutingPolicy(model=model),
    )


class GatewayClient:
    def __init__(self, address: str):
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def complete(self, request: gw.CompleteRequest, timeout: float = 120.0) -> gw.CompleteResponse:
        return await self.stub.Complete(request, timeout=timeout)

    async def stats(self) -> gw.GetStatsResponse:
        return await self.stub.GetStats(gw.GetStatsRequest(), timeout=10)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
