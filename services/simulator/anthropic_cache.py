"""Anthropic prompt caching: which prefix is read, which are written, and the usage it bills.

As documented: a prefix up to a cache_control breakpoint is written when it reaches the
model's minimum cacheable length; a request reads the longest live prefix found at a
breakpoint or up to 20 blocks before one; a hit refreshes the entry's TTL. Billing with
A = tokens read, B = end of the last 1h write (or A), C = end of the last write (or A):
cache_read = A, 1h writes = B - A, 5m writes = C - B, input_tokens = everything after C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator.anthropic_request import TTLS, PromptBlock, layout_tokens
from costmesh.services.simulator.prefix_cache import PrefixCache

LOOKBACK_BLOCKS = 20


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


def apply_cache(
    cache: PrefixCache,
    namespace: str,
    blocks: tuple[PromptBlock, ...],
    input_tokens: int,
    min_cacheable_tokens: int,
) -> CacheUsage:
    """Read and write `blocks`' prefixes in `cache`; return the usage split."""
    ends = layout_tokens(blocks)
    breakpoints = [i for i, block in enumerate(blocks) if block.ttl]
    read = _longest_hit(cache, namespace, blocks, breakpoints)
    read_tokens = ends[read] if read is not None else 0
    start = -1 if read is None else read
    writes = [i for i in breakpoints if i > start and ends[i] >= min_cacheable_tokens]
    for i in writes:
        cache.put(namespace, blocks[i].digest, TTLS[blocks[i].ttl or "5m"])
    end_1h = max((ends[i] for i in writes if blocks[i].ttl == "1h"), default=read_tokens)
    end_all = max((ends[i] for i in writes), default=read_tokens)
    return CacheUsage(
        input_tokens=input_tokens - end_all,
        cache_read_input_tokens=read_tokens,
        cache_creation_input_tokens=end_all - read_tokens,
        ephemeral_5m_input_tokens=end_all - end_1h,
        ephemeral_1h_input_tokens=end_1h - read_tokens,
    )


def _longest_hit(
    cache: PrefixCache, namespace: str, blocks: tuple[PromptBlock, ...], breakpoints: list[int]
) -> int | None:
    """The last block whose prefix is cached, looking at each breakpoint and the blocks before it."""
    candidates = sorted(
        {i for b in breakpoints for i in range(max(0, b - LOOKBACK_BLOCKS), b + 1)},
        reverse=True,
    )
    for i in candidates:
        if cache.hit(namespace, blocks[i].digest):
            return i
    return None
