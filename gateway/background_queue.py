"""Work done off the answer's path: a bounded queue drained by a few workers.

`submit` never waits: a full queue drops the item (`_dropped`). Each item runs with the trace
context and the log fields (tenant, request id) of the request that queued it. Workers start on
first use, inside the serving event loop. Closing runs what is queued within a grace period,
then stops the workers; what is still queued goes to `_left`. Subclasses define `_handle` and
what to count; `gateway.store_queue` (cache stores) and `gateway.shadow` (shadow checks) are two.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Generic, TypeVar

import structlog
from opentelemetry import context as otel_context

from costmesh.observability.log_context import bound_request, request_fields

log = structlog.get_logger()

T = TypeVar("T")


class BackgroundQueue(Generic[T]):
    name = "background"  # the workers' task names

    def __init__(self, max_pending: int, workers: int):
        self._queue: asyncio.Queue[tuple[T, otel_context.Context, dict]] = asyncio.Queue(maxsize=max_pending)
        self._workers_wanted = workers
        self._workers: list[asyncio.Task] = []

    # -- what subclasses define ----------------------------------------------------------------

    async def _handle(self, item: T) -> None:
        raise NotImplementedError

    def _queued(self, item: T) -> None:
        """`item` was queued."""

    def _dropped(self, item: T) -> None:
        """The queue was full: `item` was not queued."""

    def _taken(self, item: T) -> None:
        """A worker took `item` off the queue (or closing did)."""

    def _crashed(self, item: T, exc: Exception) -> None:
        """`_handle` raised: the worker carries on."""
        log.error(f"{self.name} failed", error=repr(exc))

    def _left(self, item: T) -> None:
        """Still queued when the workers stopped."""

    # -- the queue ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, item: T) -> bool:
        """Queue `item`; False when the queue is full. Never waits."""
        if not self._workers:  # started on first use, inside the serving loop, with no request's context
            self._workers = [asyncio.create_task(self._work(), name=f"{self.name}-{i}", context=contextvars.Context())
                             for i in range(self._workers_wanted)]
        try:
            self._queue.put_nowait((item, otel_context.get_current(), request_fields()))
        except asyncio.QueueFull:
            self._dropped(item)
            return False
        self._queued(item)
        return True

    async def _work(self) -> None:
        while True:
            item, trace_context, logged = await self._queue.get()
            self._taken(item)
            token = otel_context.attach(trace_context)
            try:
                with bound_request(logged):  # its request's ids on its log lines
                    await self._handle(item)
            except Exception as exc:  # noqa: BLE001 - an item never takes its worker down
                self._crashed(item, exc)
            finally:
                otel_context.detach(token)
                self._queue.task_done()

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until every queued item has run."""
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)

    async def aclose(self, grace_s: float = 5.0) -> int:
        """Run what is queued within `grace_s`, then stop; returns how many items were left queued."""
        await self.drain(grace_s)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        left = 0
        while not self._queue.empty():
            item, _, _ = self._queue.get_nowait()
            self._taken(item)
            self._left(item)
            left += 1
        return left
