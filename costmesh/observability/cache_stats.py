"""Reads the cache service's GetStats for the gateway's metrics endpoint.

Called from the Prometheus scrape thread, so it uses a blocking (untraced) channel of its
own; one answer serves every instrument of a scrape (kept `max_age_s`). Failures give None:
the metrics simply lack those series until the cache answers again.
"""

from __future__ import annotations

import threading
import time

import grpc

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc


class CacheStatsReader:
    def __init__(self, address: str, *, timeout_s: float = 2.0, max_age_s: float = 5.0):
        self._channel = grpc.insecure_channel(address)
        self._stub = cache_pb2_grpc.CacheServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._last: tuple[float, cache_pb2.GetStatsResponse | None] | None = None

    def __call__(self) -> cache_pb2.GetStatsResponse | None:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self._max_age_s:
                return self._last[1]
            try:
                stats = self._stub.GetStats(cache_pb2.GetStatsRequest(), timeout=self._timeout_s)
            except grpc.RpcError:
                stats = None
            self._last = (now, stats)
            return stats

    def close(self) -> None:
        self._channel.close()
