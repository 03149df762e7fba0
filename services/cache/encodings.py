"""A bounded LRU of text encodings, so a cached prompt that keeps coming back as a candidate
is encoded once, not on every lookup that finds it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

DEFAULT_MAX_BYTES = 64 * 2**20


def _nbytes(encoding: Any) -> int:
    """The arrays an encoding holds (its sentence vector and token vectors), in bytes."""
    return sum(getattr(getattr(encoding, name, None), "nbytes", 0) for name in ("vector", "tokens"))


class EncodingLRU:
    """At most `capacity` encodings by text and `max_bytes` of their arrays, least recently used
    evicted first (capacity 0 disables). Both bounds matter: a short question's encoding is
    tens of KB, one at the embedder's 256-token limit nearly 400 KB."""

    def __init__(self, capacity: int = 1024, max_bytes: int = DEFAULT_MAX_BYTES):
        if capacity < 0 or max_bytes < 0:
            raise ValueError("capacity and max_bytes must be >= 0")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, text: str) -> Any | None:
        item = self._items.get(text)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(text)
        self.hits += 1
        return item

    def put(self, text: str, encoding: Any) -> None:
        if self.capacity == 0:
            return
        if text in self._items:
            self.bytes -= _nbytes(self._items[text])
        self._items[text] = encoding
        self.bytes += _nbytes(encoding)
        self._items.move_to_end(text)
        while self._items and (len(self._items) > self.capacity or self.bytes > self.max_bytes):
            _, evicted = self._items.popitem(last=False)
            self.bytes -= _nbytes(evicted)
