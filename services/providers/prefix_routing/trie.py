"""An approximate record of the prefixes one replica has served: a trie of block-hash chains with
a bounded number of nodes and least-recently-used eviction (no gRPC, no tokenizer).

A chain hash already names its whole prefix (it hashes its parent), so each node is keyed by its
hash and keeps its parent's; a prefix of length n is present iff its n-th hash is. Nodes live in
one LRU order. Every time a chain is touched its nodes are refreshed deepest first, so a node is
always more recent than all of its descendants: the least recently used node is therefore always
a leaf, and eviction never orphans a subtree. Memory is bounded by `max_blocks` nodes (about
200 bytes each in CPython: a 32-byte digest, its parent reference, an LRU entry).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixTrie:
    def __init__(self, max_blocks: int):
        if max_blocks <= 0:
            raise ValueError("max_blocks must be positive")
        self.max_blocks = max_blocks
        self._parent: OrderedDict[bytes, bytes | None] = OrderedDict()  # LRU order: oldest first
        self._children: dict[bytes, int] = {}
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self._parent

    def match(self, chain: Sequence[bytes]) -> int:
        """How many leading blocks of `chain` are recorded (the longest recorded prefix, in blocks)."""
        lo, hi = 0, len(chain)
        while lo < hi:  # presence is monotone along a chain: a node's ancestors are always present
            mid = (lo + hi + 1) // 2
            if chain[mid - 1] in self._parent:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def insert(self, chain: Sequence[bytes]) -> None:
        """Record `chain` (at most `max_blocks` leading blocks) as just used; evict LRU leaves beyond the bound."""
        chain = chain[: self.max_blocks]
        parent: bytes | None = None
        for block_hash in chain:
            if block_hash not in self._parent:
                self._parent[block_hash] = parent
                self._children[block_hash] = 0
                if parent is not None:
                    self._children[parent] += 1
            parent = block_hash
        for block_hash in reversed(chain):  # deepest first: ancestors end up more recent
            self._parent.move_to_end(block_hash)
        while len(self._parent) > self.max_blocks:
            self._evict_one()

    def children(self, block_hash: bytes) -> int:
        return self._children[block_hash]

    def _evict_one(self) -> None:
        block_hash, parent = self._parent.popitem(last=False)
        assert self._children.pop(block_hash) == 0, "LRU node must be a leaf"
        if parent is not None:
            self._children[parent] -= 1
        self.evictions += 1
