"""Micro-batching of concurrent calls to a model: one batcher, on a worker thread or inline.

Items submitted by concurrent callers are gathered and handed to `run` in one call, so N
concurrent callers cost about one batch. Two ways to gather and run:

- On a worker thread (the default, for a model whose pass takes milliseconds): what is waiting
  when the worker is free, up to `max_batch` items, runs as one batch on a single worker thread,
  so the event loop never blocks on the model. While a batch runs, new items queue up and form
  the next one. A lone caller never waits: `window_ms` (default 0) would hold each batch open
  that long for more items, which only pays where a batch costs about what one item does (a
  2 ms window cost every semantic hit 4 ms, the embedder's and the cross-encoder's, for a 6%
  gain at 32 concurrent lookups). The sentence embedder and the cache's cross-encoder.
- Inline (`inline=True`, for work that costs about the same for one item as for a hundred and
  takes microseconds, such as the verifier's tree ensemble): items submitted during one turn of
  the event loop are run together on the next turn, on the loop itself. No waiting window and
  no thread: nothing is slower for a lone caller.

Either way every waiter of a batch whose `run` fails learns the exception (the batcher goes
on), a cancelled caller's items are left out, and `aclose` fails whoever still waits: no one
hangs. With `batching=False` each call runs on its own (the baseline to compare against).
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
    """`await submit(items)` returns `run(batch)`'s results for those items, in order.

    `calls` and `items` count the runs that succeeded and the items they ran (for tests and
    metrics)."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], *, window_ms: float = 0.0,
                 max_batch: int = 64, batching: bool = True, name: str = "batcher",
                 initializer: Callable[[], None] | None = None, inline: bool = False):
        self._run_batch = run
        self.window_s = window_ms / 1000.0
        self.max_batch = max(1, max_batch)
        self.batching = batching
        self.inline = inline
        self.name = name
        self.calls = 0
        self.items = 0
        self._closed = False
        # One worker: batches run one after another; the model uses the cores within a batch.
        # Inline, `run` is called on the event loop, so there is no thread (nor `initializer`).
        self._executor = None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix=name,
                                                                initializer=initializer)
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._taken: list[_Pending] = []  # the batch being collected or run: failed if closed meanwhile
        # Inline: the items submitted during this turn of `_loop`, run by the callback `_turn`.
        self._turn_items: list[_Pending] = []
        self._turn: asyncio.Handle | None = None

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        if not items:
            return []
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        loop = asyncio.get_running_loop()
        if not self.batching:
            if self.inline:
                return self._run(list(items))
            return self._checked(list(await loop.run_in_executor(self._executor, self._run_batch, list(items))),
                                 len(items))
        pending = _Pending(list(items), loop.create_future())
        if self.inline:
            self._add_to_turn(loop, pending)
        else:
            self._ensure_worker(loop)
            assert self._queue is not None
            self._queue.put_nowait(pending)
        return await pending.future

    def _checked(self, results: list[Result], count: int) -> list[Result]:
        if len(results) != count:
            raise RuntimeError(f"{self.name}: {len(results)} results for a batch of {count}")
        self.calls += 1
        self.items += count
        return results

    def _run(self, items: list[Item]) -> list[Result]:
        return self._checked(list(self._run_batch(items)), len(items))

    # Inline: one loop turn is the window.

    def _add_to_turn(self, loop: asyncio.AbstractEventLoop, pending: _Pending) -> None:
        if self._turn is None or self._loop is not loop:
            self._loop = loop
            self._turn_items = []
            self._turn = loop.call_soon(self._run_turn, self._turn_items)
        self._turn_items.append(pending)

    def _run_turn(self, pendings: list[_Pending]) -> None:
        if pendings is self._turn_items:
            self._turn, self._turn_items = None, []
        batch: list[_Pending] = []
        size = 0
        for p in pendings:
            if p.future.done():  # cancelled, or failed by aclose
                continue
            if batch and size + len(p.items) > self.max_batch:
                self._run_inline(batch)
                batch, size = [], 0
            batch.append(p)
            size += len(p.items)
        if batch:
            self._run_inline(batch)

    def _run_inline(self, batch: list[_Pending]) -> None:
        try:
            results = self._run([item for p in batch for item in p.items])
        except Exception as exc:  # every waiter learns why, and the batcher goes on
            _fail(batch, exc)
            return
        _deliver(batch, results)

    # On the worker thread: a window of `window_ms`.

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
                results = self._checked(list(await loop.run_in_executor(self._executor, self._run_batch, items)),
                                        len(items))
            except Exception as exc:  # the model failed: every waiter learns why, and the worker goes on
                self._taken = []
                _fail(batch, exc)
                continue
            self._taken = []  # (not on cancellation: aclose fails those)
            _deliver(batch, results)

    async def aclose(self) -> None:
        """Stop the collector and the worker thread (inline: drop the pending turn). Callers still
        waiting, and any that submit later, get an error, never a hang."""
        self._closed = True
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
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        _fail(self._turn_items, closed)
        self._turn_items = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _deliver(batch: list[_Pending], results: list[Any]) -> None:
    start = 0
    for p in batch:
        end = start + len(p.items)
        if not p.future.done():
            p.future.set_result(results[start:end])
        start = end


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(exc)
