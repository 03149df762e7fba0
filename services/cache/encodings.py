"""A bounded LRU of text encodings, so a cached prompt that keeps coming back as a candidate
is encoded once, not on every lookup that finds it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class EncodingLRU:
    """At most `capacity` encodings by text, least recently used evicted first (0 disables)."""

    def __init__(self, capacity: int = 1024):
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
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
        self._items[text] = encoding
        self._items.move_to_end(text)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
