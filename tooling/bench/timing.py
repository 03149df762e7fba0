"""Latency and throughput measurement helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np


def percentile_ms(samples_s: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1000.0, q))


async def sequential(call: Callable[[int], Awaitable[object]], n: int) -> list[float]:
    """Latency of `n` calls made one after another, in seconds."""
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - started)
    return latencies


async def throughput(call: Callable[[int], Awaitable[object]], n: int, concurrency: int) -> float:
    """Requests per second for `n` calls spread over `concurrency` workers."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)
