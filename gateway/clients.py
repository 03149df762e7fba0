"""Typed calls to the mesh's services; RPC failures come back as costmesh domain errors."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.convert import same_fields_as
from costmesh.rpc.status import call_unary, from_rpc_error

Channels = grpc.aio.Channel | Sequence[grpc.aio.Channel]


class _Rotation:
    """Stubs over several channels (each its own connections), taken in turn: calls spread over
    every connection, so over the worker processes of a replica as well as over replicas."""

    def __init__(self, stub_type, channels: Channels):
        many = [channels] if isinstance(channels, grpc.aio.Channel) else list(channels)
        if not many:
            raise ValueError("at least one channel is required")
        self._stubs = itertools.cycle([stub_type(channel) for channel in many])

    def next(self):
        return next(self._stubs)


LookupObserver = Callable[[cache_pb2.LookupRequest, cache_pb2.LookupResponse], None]


class MeshClients:
    """`cache_stores`: the channels stores go over (default: the lookups'); apart, so that a
    round-robin over two replicas does not send every lookup to one and every store to the other.
    `lookup_observers` are told every lookup's answer (the shadow checks watch for hits drawn for one)."""

    def __init__(self, cache: Channels, classifier: Channels, router: Channels, *, cache_stores: Channels = ()):
        self._cache = _Rotation(cache_pb2_grpc.CacheServiceStub, cache)
        self._stores = _Rotation(cache_pb2_grpc.CacheServiceStub, cache_stores or cache)
        self._classifier = _Rotation(classifier_pb2_grpc.ClassifierServiceStub, classifier)
        self._router = _Rotation(router_pb2_grpc.RouterServiceStub, router)
        self.lookup_observers: list[LookupObserver] = []

    async def lookup(self, request: cache_pb2.LookupRequest, timeout: float) -> cache_pb2.LookupResponse:
        response = await call_unary(self._cache.next().Lookup, request, timeout)
        for observe in self.lookup_observers:
            observe(request, response)
        return response

    async def judge_shadow(self, request: cache_pb2.JudgeShadowRequest,
                           timeout: float) -> cache_pb2.JudgeShadowResponse:
        return await call_unary(self._stores.next().JudgeShadow, request, timeout)

    async def invalidate(self, request: cache_pb2.InvalidateRequest, timeout: float) -> cache_pb2.InvalidateResponse:
        return await call_unary(self._stores.next().Invalidate, request, timeout)

    async def cache_stats(self, timeout: float) -> cache_pb2.GetStatsResponse:
        """The cache's counters and its verifier's operating point (the admin API's), for no tenant."""
        return await call_unary(self._stores.next().GetStats, cache_pb2.GetStatsRequest(), timeout)

    async def store(self, request: cache_pb2.StoreRequest, timeout: float) -> cache_pb2.StoreResponse:
        return await call_unary(self._stores.next().Store, request, timeout)

    async def classify(
        self, request: classifier_pb2.ClassifyRequest, timeout: float
    ) -> classifier_pb2.ClassifyResponse:
        return await call_unary(self._classifier.next().Classify, request, timeout)

    async def execute(self, request: router_pb2.ExecuteRequest, timeout: float | None) -> router_pb2.ExecuteResponse:
        return await call_unary(self._router.next().Execute, request, timeout)

    async def stream_execute(
        self, request: router_pb2.ExecuteRequest, timeout: float | None
    ) -> AsyncIterator[router_pb2.StreamExecuteResponse]:
        # StreamExecute has its own request message: ExecuteRequest's fields under the same numbers
        stream_request = same_fields_as(request, router_pb2.StreamExecuteRequest)
        call = self._router.next().StreamExecute(stream_request, timeout=timeout)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()
