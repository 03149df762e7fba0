"""GatewayService servicer: protobuf in, protobuf out; the work is in `pipeline`."""

from __future__ import annotations

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.gateway.pipeline import Pipeline


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    async def Complete(self, request: gw.CompleteRequest, context) -> gw.CompleteResponse:
        return await self._pipeline.complete(request, context.time_remaining())

    async def StreamComplete(self, request: gw.StreamCompleteRequest, context):
        async for event in self._pipeline.stream(request.request, context.time_remaining()):
            yield event

    async def GetStats(self, request: gw.GetStatsRequest, context) -> gw.GetStatsResponse:
        return self._pipeline.stats.to_pb()
