"""A small raw-protobuf async client of the gateway used by the demo, the benchmarks and the
tests. Applications should use the typed client, `costmesh.client`."""

from __future__ import annotations

import os
from collections.abc import Callable

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client.credentials import channel_credentials
from costmesh.client.request import CompletionRequest
from costmesh.rpc.server import CHANNEL_OPTIONS


def build_request(
    prompt: str,
    *,
    tenant: str = "",
    system: str = "",
    bypass_cache: bool = False,
    max_tokens: int = 512,
    model: str = "",
) -> gw.CompleteRequest:
    """The typed client's request (`CompletionRequest`) as protobuf, for `tenant` when given
    (only a caller acting for several tenants sets it; a key names its own tenant)."""
    request = CompletionRequest(prompt=prompt, system=system, bypass=bypass_cache, max_tokens=max_tokens,
                                model=model).to_pb()
    request.tenant_id = tenant
    return request


class _Bearer:
    """Adds `authorization: Bearer <key>`; the key may depend on the request's tenant_id."""

    def __init__(self, api_key: str | Callable[[str], str]):
        self._api_key = api_key

    def _details(self, details: grpc.aio.ClientCallDetails, request) -> grpc.aio.ClientCallDetails:
        if callable(self._api_key):
            inner = getattr(request, "request", request)  # StreamCompleteRequest wraps the request
            key = self._api_key(getattr(inner, "tenant_id", "") or "demo")
        else:
            key = self._api_key
        metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {key}"))
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)



class _BearerUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details, request), request)


class _BearerStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    # grpc.aio files an interceptor under one kind only, hence a class per kind.
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details, request), request)


class GatewayClient:
    """`api_key`: one key, or a function tenant -> key (a test or backend acting for several tenants).
    `ca_file`: TLS, trusting that CA (a gateway with COSTMESH_TLS_CERT_FILE; `Mesh.ca_file`)."""

    def __init__(self, address: str, api_key: str | Callable[[str], str] | None = None, *,
                 ca_file: str | os.PathLike | None = None):
        interceptors = [_BearerUnary(api_key), _BearerStream(api_key)] if api_key is not None else None
        credentials = channel_credentials(ca_file=ca_file)
        if credentials is not None:
            self._channel = grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS,
                                                    interceptors=interceptors)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    async def complete(self, request: gw.CompleteRequest, timeout: float = 120.0) -> gw.CompleteResponse:
        return await self.stub.Complete(request, timeout=timeout)

    async def stats(self, tenant: str = "") -> gw.GetStatsResponse:
        """GetStats: the figures of the key's tenant only; `tenant` picks the key when `api_key` is
        a function (with authentication off it names the tenant; "" there: every tenant's)."""
        return await self.stub.GetStats(gw.GetStatsRequest(tenant_id=tenant), timeout=10)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
