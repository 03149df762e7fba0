"""`AsyncClient`: the gateway from asyncio code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client.request import CompletionRequest, as_request
from costmesh.client.retry import RetryPolicy, delay_s, may_retry
from costmesh.client.types import Completion, Stats, StreamEvent, TextDelta
from costmesh.rpc.channels import CHANNEL_OPTIONS
from costmesh.rpc.status import from_rpc_error


class AsyncClient:
    """`AsyncClient("127.0.0.1:50051", api_key="cm_...")`; use as `async with`, or `await close()`.

    `timeout_s` is each call's deadline (retries included); `credentials` switches to TLS.
    """

    def __init__(self, target: str, api_key: str, *, timeout_s: float = 120.0,
                 retry: RetryPolicy = RetryPolicy(), credentials: grpc.ChannelCredentials | None = None):
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout_s = timeout_s
        self.retry = retry

    async def complete(self, request: str | CompletionRequest, *, timeout_s: float | None = None,
                       **options) -> Completion:
        """Answer a prompt (or a `CompletionRequest`); keyword options are `CompletionRequest` fields."""
        pb = as_request(request, **options).to_pb()
        reply = await self._call(self._stub.Complete, pb, timeout_s, idempotent=False)
        return Completion.from_pb(reply)

    async def stream(self, request: str | CompletionRequest, *, timeout_s: float | None = None,
                     **options) -> AsyncIterator[StreamEvent]:
        """`TextDelta`s as the answer arrives, then one `Completion` with the full text and the bill.

        Retried only when no connection could be made; never once an event has arrived."""
        pb = gw.StreamCompleteRequest(request=as_request(request, **options).to_pb())
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            call = self._stub.StreamComplete(pb, timeout=max(0.001, deadline - time.monotonic()),
                                             metadata=self._metadata)
            received = False
            chunks: list[str] = []
            try:
                async for event in call:
                    received = True
                    if event.WhichOneof("event") == "text_delta":
                        chunks.append(event.text_delta)
                        yield TextDelta(event.text_delta)
                    else:
                        yield Completion.from_pb(event.final, text="".join(chunks))
                return
            except grpc.aio.AioRpcError as exc:
                if received or not await self._backoff(exc, attempt, deadline, idempotent=False):
                    raise from_rpc_error(exc) from None
            finally:
                call.cancel()

    async def stats(self, *, timeout_s: float | None = None) -> Stats:
        reply = await self._call(self._stub.GetStats, gw.GetStatsRequest(), timeout_s, idempotent=True)
        return Stats.from_pb(reply)

    async def _call(self, method, request, timeout_s: float | None, *, idempotent: bool):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=max(0.001, deadline - time.monotonic()),
                                    metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                if not await self._backoff(exc, attempt, deadline, idempotent=idempotent):
                    raise from_rpc_error(exc) from None

    async def _backoff(self, exc: grpc.aio.AioRpcError, attempt: int, deadline: float, *, idempotent: bool) -> bool:
        """Sleep before the next attempt and return True, or return False: give up."""
        if attempt >= self.retry.max_attempts or not may_retry(exc, idempotent=idempotent, policy=self.retry):
            return False
        wait = delay_s(exc, attempt, self.retry, getattr(from_rpc_error(exc), "retry_after_s", None))
        if time.monotonic() + wait >= deadline:
            return False
        await asyncio.sleep(wait)
        return True

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
