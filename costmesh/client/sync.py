"""`Client`: the gateway from plain (blocking) Python code. Same API as `AsyncClient`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client.request import CompletionRequest, as_request
from costmesh.client.retry import RetryPolicy, delay_s, may_retry
from costmesh.client.types import Completion, Stats, StreamEvent, TextDelta
from costmesh.rpc.channels import CHANNEL_OPTIONS
from costmesh.rpc.status import from_rpc_error


class Client:
    """`Client("127.0.0.1:50051", api_key="cm_...")`; use as `with`, or call `close()`."""

    def __init__(self, target: str, api_key: str, *, timeout_s: float = 120.0,
                 retry: RetryPolicy = RetryPolicy(), credentials: grpc.ChannelCredentials | None = None):
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout_s = timeout_s
        self.retry = retry

    def complete(self, request: str | CompletionRequest, *, timeout_s: float | None = None, **options) -> Completion:
        pb = as_request(request, **options).to_pb()
        return Completion.from_pb(self._call(self._stub.Complete, pb, timeout_s, idempotent=False))

    def stream(self, request: str | CompletionRequest, *, timeout_s: float | None = None,
               **options) -> Iterator[StreamEvent]:
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
                for event in call:
                    received = True
                    if event.WhichOneof("event") == "text_delta":
                        chunks.append(event.text_delta)
                        yield TextDelta(event.text_delta)
                    else:
                        yield Completion.from_pb(event.final, text="".join(chunks))
                return
            except grpc.RpcError as exc:
                if received or not self._backoff(exc, attempt, deadline, idempotent=False):
                    raise from_rpc_error(exc) from None
            finally:
                call.cancel()

    def stats(self, *, timeout_s: float | None = None) -> Stats:
        return Stats.from_pb(self._call(self._stub.GetStats, gw.GetStatsRequest(), timeout_s, idempotent=True))

    def _call(self, method, request, timeout_s: float | None, *, idempotent: bool):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=max(0.001, deadline - time.monotonic()), metadata=self._metadata)
            except grpc.RpcError as exc:
                if not self._backoff(exc, attempt, deadline, idempotent=idempotent):
                    raise from_rpc_error(exc) from None

    def _backoff(self, exc: grpc.RpcError, attempt: int, deadline: float, *, idempotent: bool) -> bool:
        if attempt >= self.retry.max_attempts or not may_retry(exc, idempotent=idempotent, policy=self.retry):
            return False
        wait = delay_s(exc, attempt, self.retry, getattr(from_rpc_error(exc), "retry_after_s", None))
        if time.monotonic() + wait >= deadline:
            return False
        time.sleep(wait)
        return True

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
