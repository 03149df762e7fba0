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


class Recorder:
    """Doubles its items, recording each batch and the thread it ran on."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()

    def __call__(self, items):
        self.batches.append(list(items))
        self.threads.add(threading.get_ident())
        return [2 * x for x in items]


async def test_inline_runs_one_loop_turns_items_together_on_the_loop_with_no_window():
    run = Recorder()
    batcher = MicroBatcher(run, inline=True, window_ms=60_000, max_batch=4)  # the window does not apply
    assert await asyncio.gather(*[batcher.submit([i, 10 + i]) for i in range(3)]) == [[0, 20], [2, 22], [4, 24]]
    assert run.batches == [[0, 10, 1, 11], [2, 12]]  # one turn's items, at most max_batch a run
    assert await asyncio.wait_for(batcher.submit([7]), 1) == [14]  # a lone caller: the next turn, no wait
    assert run.threads == {threading.get_ident()} and (batcher.calls, batcher.items) == (3, 7)
    await batcher.aclose()


async def test_inline_failures_reach_every_waiter_and_closing_fails_the_turn_not_yet_run():
    answers = iter([RuntimeError("bad model"), ["only one"], ["x!", "y!"]])

    def run(items):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    batcher = MicroBatcher(run, inline=True)
    failed = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    assert [str(r) for r in failed] == ["bad model"] * 2
    wrong = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "1 results for a batch of 2" in str(r) for r in wrong)
    assert await asyncio.gather(batcher.submit(["x"]), batcher.submit(["y"])) == [["x!"], ["y!"]]

    waiting = asyncio.ensure_future(batcher.submit(["z"]))
    await asyncio.sleep(0)  # submitted; its turn has not run yet
    await batcher.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(["later"])
    assert batcher.calls == 1


async def test_inline_without_batching_runs_each_call_at_once():
    run = Recorder()
    batcher = MicroBatcher(run, inline=True, batching=False)
    assert await asyncio.gather(batcher.submit([1]), batcher.submit([2, 3])) == [[2], [4, 6]]
    assert run.batches == [[1], [2, 3]]
    await batcher.aclose()


async def test_by_default_a_batch_is_what_waited_while_the_previous_one_ran():
    """No window: a lone call runs at once, and calls made while a batch runs form the next one."""
    started, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def run(items):
        batches.append(list(items))
        if len(batches) == 1:
            started.set()
            release.wait(5)
        return items

    batcher = MicroBatcher(run)
    first = asyncio.ensure_future(batcher.submit(["a"]))
    for _ in range(20):  # a few turns of the loop, microseconds: a window of any length would still be open
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(batcher.submit([name])) for name in ("b", "c")]
    await asyncio.to_thread(started.wait, 5)
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == [["a"], ["b"], ["c"]]
    assert batches == [["a"], ["b", "c"]]
    await batcher.aclose()
