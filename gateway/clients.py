"""Typed calls to the mesh's services; RPC failures come back as costmesh domain errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.rpc.status import from_rpc_error


class MeshClients:
    def __init__(self, cache: grpc.aio.Channel, classifier: grpc.aio.Channel, router: grpc.aio.Channel):
        self._cache = cache_pb2_grpc.CacheServiceStub(cache)
        self._classifier = classifier_pb2_grpc.ClassifierServiceStub(classifier)
        self._router = router_pb2_grpc.RouterServiceStub(router)

    async def lookup(self, request: cache_pb2.LookupRequest, timeout: float) -> cache_pb2.LookupResponse:
        return await _call(self._cache.Lookup, request, timeout)

    async def store(self, request: cache_pb2.StoreRequest, timeout: float) -> cache_pb2.StoreResponse:
        return await _call(self._cache.Store, request, timeout)

    async def classify(
        self, request: classifier_pb2.ClassifyRequest, timeout: float
    ) -> classifier_pb2.ClassifyResponse:
        return await _call(self._classifier.Classify, request, timeout)

    async def execute(self, request: router_pb2.ExecuteRequest, timeout: float | None) -> router_pb2.ExecuteResponse:
        return await _call(self._router.Execute, request, timeout)

    async def stream_execute(
        self, request: router_pb2.ExecuteRequest, timeout: float | None
    ) -> AsyncIterator[router_pb2.StreamExecuteResponse]:
        call = self._router.StreamExecute(request, timeout=timeout)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()


async def _call(method, request, timeout):
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None
