"""Admission control: a service takes at most `limit` calls at once and refuses the next one at
once (`Overloaded`, RESOURCE_EXHAUSTED with RetryInfo) instead of queueing it past its caller's
deadline. At saturation latency stays bounded and the caller decides what to do without it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from costmesh.errors import Overloaded


class Admission:
    def __init__(self, name: str, limit: int):
        if limit < 1:
            raise ValueError(f"{name}: the admission limit must be >= 1, got {limit}")
        self.name = name
        self.limit = limit
        self.in_flight = 0
        self.admitted = 0
        self.refused = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `limit` slots for the body, or raise `Overloaded` when none is free.
        Asyncio code only (one event loop): the counter needs no lock."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise Overloaded(f"{self.name} busy: {self.in_flight} calls in flight, at most {self.limit}")
        self.in_flight += 1
        self.admitted += 1
        try:
            yield
        finally:
            self.in_flight -= 1
