"""Metric label values from an open set (tenants, models), kept to a bounded set.

Each distinct value costs Prometheus one time series per labelled instrument, so a label fed
from caller-controlled data must not grow without end: the first `limit` values seen keep their
own name (cut to `MAX_VALUE_CHARS`), every later one is counted as `OTHER`. Per process, like
every other counter of the replica; restarting it starts the set again.
"""

from __future__ import annotations

import threading

OTHER = "other"
MAX_VALUE_CHARS = 64


class BoundedLabel:
    def __init__(self, limit: int, empty: str = "none"):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._empty = empty
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value[:MAX_VALUE_CHARS] or self._empty
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
            return value
