"""Retry policy, exponential backoff with full jitter, and the clock the cascade waits on."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Per model: `max_retries` after a 429, `transient_retries` after a 5xx / unreachable.

    Waits are full-jitter exponential: uniform(0, min(max_delay_s, base_delay_s * 2**n)), and
    at least the upstream's retry-after. A retry-after longer than `max_delay_s` is not waited
    for: the cascade moves on to the next model instead.

    Per request, 429s are bounded: after `max_rate_limited` attempts answered 429, or once the
    waits after 429s would pass `rate_limit_wait_s` in all, the request stops there and answers
    RateLimited (RESOURCE_EXHAUSTED with RetryInfo; HTTP 429 with retry-after), as it does when
    every model it tried said 429.
    """

    max_retries: int = 2
    transient_retries: int = 1
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_rate_limited: int = 4
    rate_limit_wait_s: float = 4.0


class Backoff:
    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None):
        self._policy = policy
        self._rng = rng or random.Random()

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """How long to wait before retry number `retry` (0-based)."""
        cap = min(self._policy.max_delay_s, self._policy.base_delay_s * 2**retry)
        jittered = self._rng.uniform(0.0, cap)
        return jittered if retry_after_s is None else max(retry_after_s, jittered)
