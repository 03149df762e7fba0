"""`AsyncClient`: the gateway from asyncio code."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client.credentials import channel_credentials
from costmesh.client.request import CompletionRequest, as_request
from costmesh.client.retry import RetryPolicy
from costmesh.client.types import Completion, Stats, StreamEvent, TextDelta
from costmesh.rpc.channels import CHANNEL_OPTIONS
from costmesh.rpc.status import from_rpc_error


class AsyncClient:
    """`AsyncClient("127.0.0.1:50051", api_key="cm_...")`; use as `async with`, or `await close()`.

    `timeout_s` is each call's deadline (retries included); `retry` is gRPC's retry policy for
    the channel (`costmesh.client.retry`). TLS: `ca_file` (the PEM file of the CA that signed the
    gateway's certificate, e.g. `costmesh tls-cert`'s ca.pem), `tls=True` (a publicly trusted
    certificate), or your own `credentials`.
    """

    def __init__(self, target: str, api_key: str, *, timeout_s: float = 120.0,
                 retry: RetryPolicy = RetryPolicy(), credentials: grpc.ChannelCredentials | None = None,
                 tls: bool = False, ca_file: str | os.PathLike | None = None):
        options = [*CHANNEL_OPTIONS, *retry.channel_options()]
        credentials = channel_credentials(tls=tls, ca_file=ca_file, credentials=credentials)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout_s = timeout_s
        self.retry = retry

    async def complete(self, request: str | CompletionRequest, *, timeout_s: float | None = None,
                       **options) -> Completion:
        """Answer a prompt (or a `CompletionRequest`); keyword options are `CompletionRequest` fields."""
        pb = as_request(request, **options).to_pb()
        return Completion.from_pb(await self._call(self._stub.Complete, pb, timeout_s))

    async def stream(self, request: str | CompletionRequest, *, timeout_s: float | None = None,
                     **options) -> AsyncIterator[StreamEvent]:
        """`TextDelta`s as the answer arrives, then one `Completion` with the full text and the bill.

        Retried as `complete` is (see `costmesh.client.retry`); never once an event has arrived."""
        pb = gw.StreamCompleteRequest(request=as_request(request, **options).to_pb())
        call = self._stub.StreamComplete(pb, timeout=timeout_s or self.timeout_s, metadata=self._metadata,
                                         wait_for_ready=self.retry.wait_for_ready)
        chunks: list[str] = []
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "text_delta":
                    chunks.append(event.text_delta)
                    yield TextDelta(event.text_delta)
                elif kind == "final":  # it carries the tool calls too: their deltas are not needed here
                    yield Completion.from_pb(event.final, text="".join(chunks))
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def stats(self, *, timeout_s: float | None = None) -> Stats:
        return Stats.from_pb(await self._call(self._stub.GetStats, gw.GetStatsRequest(), timeout_s))

    async def _call(self, method, request, timeout_s: float | None):
        try:
            return await method(request, timeout=timeout_s or self.timeout_s, metadata=self._metadata,
                                wait_for_ready=self.retry.wait_for_ready)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
