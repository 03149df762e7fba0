"""The micro-batcher never leaves a caller waiting: a closed batcher and a bad model answer with errors."""

from __future__ import annotations

import asyncio
import threading

import pytest

from costmesh.batching import MicroBatcher


async def test_closing_fails_the_batch_running_and_the_items_queued_behind_it():
    started, release = threading.Event(), threading.Event()

    def slow(items):
        started.set()
        release.wait(5)
        return items

    batcher = MicroBatcher(slow, window_ms=1, max_batch=1)
    running = asyncio.ensure_future(batcher.submit(["a"]))
    await asyncio.to_thread(started.wait, 5)
    queued = asyncio.ensure_future(batcher.submit(["b"]))
    await asyncio.sleep(0.01)
    await batcher.aclose()
    release.set()
    for waiter in (running, queued):
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiter, 2)


async def test_a_model_returning_the_wrong_number_of_results_fails_its_batch_not_the_batcher():
    answers = iter([["only one"], ["x!", "y!"]])
    batcher = MicroBatcher(lambda items: next(answers), window_ms=20)
    first = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "1 results for a batch of 2" in str(r) for r in first)
    assert await asyncio.gather(batcher.submit(["x"]), batcher.submit(["y"])) == [["x!"], ["y!"]]
    await batcher.aclose()
