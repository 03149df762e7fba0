"""Micro-batching of concurrent calls to a model that runs on a worker thread.

Items submitted by concurrent callers are collected for a short window (`window_ms`) or until
`max_batch` are waiting, then handed to `run` in one call on a single worker thread, so the
event loop never blocks on the model and N concurrent callers cost about one batch.
While a batch runs, new items queue up and form the next one. With `batching=False` each call
runs on its own (the baseline to compare against). Both the sentence embedder and the cache's
cross-encoder use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future = field(repr=False)


class MicroBatcher(Generic[Item, Result]):
    """`await submit(items)` returns `run(batch)`'s results for those items, in order."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], *, window_ms: float = 2.0,
                 max_batch: int = 64, batching: bool = True, name: str = "batcher",
                 initializer: Callable[[], None] | None = None):
        self._run_batch = run
        self.window_s = window_ms / 1000.0
        self.max_batch = max(1, max_batch)
        self.batching = batching
        self.name = name
        # One worker: batches run one after another; the model uses the cores within a batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=initializer)
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._taken: list[_Pending] = []  # the batch being collected or run: failed if closed meanwhile

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if not self.batching:
            return list(await loop.run_in_executor(self._executor, self._run_batch, list(items)))
        self._ensure_worker(loop)
        pending = _Pending(list(items), loop.create_future())
        assert self._queue is not None
        self._queue.put_nowait(pending)
        return await pending.future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        self._loop = loop
        self._queue = asyncio.Queue()
        self._worker = loop.create_task(self._work(self._queue), name=self.name)

    async def _collect(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        batch = self._taken = [await queue.get()]
        size = len(batch[0].items)
        deadline = loop.time() + self.window_s
        while size < self.max_batch:
            if queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = queue.get_nowait()
            batch.append(item)
            size += len(item.items)
        return [p for p in batch if not p.future.done()]

    async def _work(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            if not batch:
                continue
            self._taken = batch
            items = [item for p in batch for item in p.items]
            try:
                results = list(await loop.run_in_executor(self._executor, self._run_batch, items))
                if len(results) != len(items):
                    raise RuntimeError(f"{self.name}: {len(results)} results for a batch of {len(items)}")
            except Exception as exc:  # the model failed: every waiter learns why, and the worker goes on
                self._taken = []
                _fail(batch, exc)
                continue
            self._taken = []  # (not on cancellation: aclose fails those)
            start = 0
            for p in batch:
                end = start + len(p.items)
                if not p.future.done():
                    p.future.set_result(results[start:end])
                start = end

    async def aclose(self) -> None:
        """Stop the collector and the worker thread. Callers still waiting get an error, never a hang."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        closed = RuntimeError(f"{self.name} is closed")
        _fail(self._taken, closed)
        while self._queue is not None and not self._queue.empty():
            _fail([self._queue.get_nowait()], closed)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(exc)
