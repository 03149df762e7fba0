"""Fail-open access to Redis: a deadline on every call and a short cool-down after a failure.

Redis down, erroring or slower than the deadline raises `RedisUnavailable`; the core turns it
into a miss (lookups) or a dropped store. After a failure Redis is skipped for `cooldown_s`
(no pile-up of calls waiting on a dead host), then tried again: the pool reconnects by itself
and `needs_index` tells the core to re-create the index a restarted Redis may have lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

_INDEX_GONE = ("no such index", "unknown index", "index not found")


class RedisUnavailable(Exception):
    """Redis could not serve this call in time."""


class RedisGuard:
    def __init__(self, timeout_s: float, cooldown_s: float, clock: Callable[[], float] = time.monotonic):
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._down_until = 0.0
        self.needs_index = True
        self.last_error = ""

    @property
    def available(self) -> bool:
        return self._clock() >= self._down_until

    async def call(self, operation: Callable[[], Awaitable[T]], *, timeout_s: float | None = None,
                   trip_on_timeout: bool = True) -> T:
        """Run `operation()` under the deadline (`timeout_s`, else the guard's), or raise
        RedisUnavailable. With `trip_on_timeout=False` a slow reply fails this call only: an
        operation that is long by nature (deleting thousands of entries) says nothing about
        whether Redis can serve a lookup, so it must not send lookups into the cool-down."""
        if not self.available:
            raise RedisUnavailable(f"cooling down after: {self.last_error}")
        deadline = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(operation(), deadline)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            reason = f"timeout after {deadline * 1000:.0f} ms"
            if trip_on_timeout:
                self._trip(reason)
            else:
                self.last_error = reason
            raise RedisUnavailable(reason) from exc
        except Exception as exc:  # redis errors, possibly wrapped by redisvl
            self._classify(exc)
            raise RedisUnavailable(self.last_error) from exc

    def _classify(self, exc: BaseException) -> None:
        chain, cause = [], exc
        while cause is not None and len(chain) < 8:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        text = " ".join(str(e).lower() for e in chain)
        if any(isinstance(e, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)) for e in chain):
            self._trip(f"{type(chain[-1]).__name__}: {chain[-1]}")
        elif any(marker in text for marker in _INDEX_GONE):
            self.needs_index = True
            self.last_error = f"index missing: {exc}"
        else:  # a command error (e.g. OOM) fails this call only
            self.last_error = f"{type(exc).__name__}: {exc}"

    def _trip(self, reason: str) -> None:
        self.last_error = reason
        self._down_until = self._clock() + self.cooldown_s
        self.needs_index = True
