"""A store of cached prompt prefixes (by digest) with expiry on a clock tests can move."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class SimClock:
    """Monotonic time plus an offset that `advance` moves (the admin clock endpoint)."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self.offset = 0.0

    def now(self) -> float:
        return self._now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class PrefixCache:
    """Prefix digests per namespace with an expiry each; least recently used goes first when full."""

    def __init__(self, clock: SimClock, max_entries: int = 500_000):
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def hit(self, namespace: str, digest: str) -> bool:
        """Whether the prefix is cached and alive; a hit refreshes its TTL."""
        key = (namespace, digest)
        entry = self._entries.get(key)
        if entry is None:
            return False
        expires, ttl = entry
        now = self._clock.now()
        if expires <= now:
            del self._entries[key]
            return False
        self._entries[key] = (now + ttl, ttl)
        self._entries.move_to_end(key)
        return True

    def put(self, namespace: str, digest: str, ttl_s: float) -> None:
        key = (namespace, digest)
        old = self._entries.pop(key, None)
        ttl = max(ttl_s, old[1]) if old else ttl_s
        self._entries[key] = (self._clock.now() + ttl, ttl)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
