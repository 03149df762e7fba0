"""Admission control: a service takes at most `limit` calls at once, and none its recent latency
says would finish after its caller's deadline; the rest are refused at once (`Overloaded`,
RESOURCE_EXHAUSTED with RetryInfo) instead of queueing until they time out. At saturation
latency stays bounded, no work is done for an answer nobody waits for any more, and the caller
decides what to do without it (the gateway answers uncached and still stores the answer)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from costmesh.errors import Overloaded

# A call is refused when the recent latency is over this share of the time its caller has left.
DEADLINE_SHARE = 0.8


class Admission:
    def __init__(self, name: str, limit: int, *, clock: Callable[[], float] = time.monotonic,
                 smoothing: float = 0.2):
        if limit < 1:
            raise ValueError(f"{name}: the admission limit must be >= 1, got {limit}")
        self.name = name
        self.limit = limit
        self.in_flight = 0
        self.admitted = 0
        self.refused = 0
        self.latency_s = 0.0  # exponentially weighted latency of recent calls
        self._clock = clock
        self._smoothing = smoothing

    @contextmanager
    def slot(self, deadline_s: float | None = None) -> Iterator[None]:
        """Hold one of the `limit` slots for the body, or raise `Overloaded` when none is free or
        when, with calls in flight, recent calls took longer than the caller has left
        (`deadline_s`, seconds). Asyncio code only (one event loop): the counters need no lock."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise Overloaded(f"{self.name} busy: {self.in_flight} calls in flight, at most {self.limit}")
        if deadline_s is not None and self.in_flight and self.latency_s > DEADLINE_SHARE * deadline_s:
            self.refused += 1
            raise Overloaded(f"{self.name} busy: recent calls took {self.latency_s:.2f} s, "
                             f"the caller has {deadline_s:.2f} s left")
        self.in_flight += 1
        self.admitted += 1
        started = self._clock()
        try:
            yield
        finally:
            self.in_flight -= 1
            elapsed = self._clock() - started
            self.latency_s += self._smoothing * (elapsed - self.latency_s)
