"""Cache stores off the answer's critical path: a bounded queue drained by a few workers.

The answer is sent as soon as the model has it; the store that makes the next paraphrase a hit
happens after. The queue is bounded (a full queue drops the store and counts it, never blocks a
request); a store the cache refuses as busy is retried with backoff, so a saturated cache delays
stores instead of losing them. Closing drains what is queued, within a grace period. Outcomes are
counted in all (`counters`) and per tenant (`tenant_counters`, the scope's tenant), as is what is
pending (`pending_of`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from costmesh.api.cache.v1 import cache_pb2
from costmesh.errors import CostmeshError, Overloaded
from costmesh.gateway.background_queue import BackgroundQueue

log = structlog.get_logger()


@dataclass
class StoreCounters:
    stored: int = 0  # the cache accepted the store (it may still decline to keep the answer)
    dropped: int = 0  # the queue was full
    failed: int = 0  # the cache failed or refused it after every retry


class StoreQueue(BackgroundQueue[cache_pb2.StoreRequest]):
    name = "cache-store"

    def __init__(
        self,
        store: Callable[[cache_pb2.StoreRequest, float], Awaitable[cache_pb2.StoreResponse]],
        *,
        max_pending: int = 1024,
        workers: int = 4,
        timeout_s: float = 2.0,
        busy_retries: int = 20,
        busy_backoff_s: float = 0.05,
    ):
        super().__init__(max_pending, workers)
        self._store = store
        self._timeout_s = timeout_s
        self._busy_retries = busy_retries
        self._busy_backoff_s = busy_backoff_s
        self.counters = StoreCounters()
        self.tenant_counters: Callable[[str], StoreCounters] | None = None  # a tenant's counters too
        self._pending_by_tenant: Counter[str] = Counter()

    def pending_of(self, tenant: str | None = None) -> int:
        """Stores queued (not yet taken by a worker): a tenant's, or all (None)."""
        return self.pending if tenant is None else self._pending_by_tenant.get(tenant, 0)

    def _count(self, request: cache_pb2.StoreRequest, outcome: str, n: int = 1) -> None:
        setattr(self.counters, outcome, getattr(self.counters, outcome) + n)
        if self.tenant_counters is not None:
            counters = self.tenant_counters(request.scope.tenant_id)
            setattr(counters, outcome, getattr(counters, outcome) + n)

    def _queued(self, request: cache_pb2.StoreRequest) -> None:
        self._pending_by_tenant[request.scope.tenant_id] += 1

    def _dropped(self, request: cache_pb2.StoreRequest) -> None:
        self._count(request, "dropped")
        log.warning("cache store queue full; answer not cached", pending=self.pending)

    def _taken(self, request: cache_pb2.StoreRequest) -> None:
        tenant = request.scope.tenant_id
        self._pending_by_tenant[tenant] -= 1
        if self._pending_by_tenant[tenant] <= 0:
            del self._pending_by_tenant[tenant]

    def _crashed(self, request: cache_pb2.StoreRequest, exc: Exception) -> None:
        self._count(request, "failed")
        super()._crashed(request, exc)

    def _left(self, request: cache_pb2.StoreRequest) -> None:
        self._count(request, "failed")

    async def _handle(self, request: cache_pb2.StoreRequest) -> None:
        delay = self._busy_backoff_s
        for attempt in range(self._busy_retries + 1):
            try:
                await self._store(request, self._timeout_s)
                self._count(request, "stored")
                return
            except Overloaded:
                if attempt == self._busy_retries:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except CostmeshError as exc:
                self._count(request, "failed")
                log.warning("cache store failed; answer not cached", error=str(exc))
                return
        self._count(request, "failed")
        log.warning("cache busy on every retry; answer not cached", retries=self._busy_retries)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (at most `timeout_s`) until every queued store has been tried."""
        await super().drain(timeout_s)

    async def aclose(self, grace_s: float = 5.0) -> int:
        """Drain within `grace_s`, then stop the workers; what is still queued counts as failed."""
        left = await super().aclose(grace_s)
        if left:
            log.warning("gateway stopping; queued cache stores not done", left=left)
        return left
