"""OpenAI automatic prompt caching: prompts of 1024+ tokens cache their prefix in 128-token steps.

The prompt's token sequence is hashed block by block (a chain, so a block's digest stands
for the whole prefix ending with it). `cached_tokens` is the longest live prefix of 1024,
1152, ... tokens; every such prefix of this prompt is then written (or refreshed). The
last token is always computed, so a prefix never covers the whole prompt.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

from costmesh.services.simulator.prefix_cache import PrefixCache

MIN_CACHED = 1024
STEP = 128


def apply_cache(cache: PrefixCache, namespace: str, tokens: Sequence[int], ttl_s: float) -> int:
    """Cached tokens of this prompt; writes its cacheable prefixes."""
    steps = (len(tokens) - 1) // STEP
    if steps * STEP < MIN_CACHED:
        return 0
    digests: list[str] = []
    digest = b"openai-prefix-v1"
    for k in range(steps):
        digest = hashlib.sha256(digest + array("I", tokens[k * STEP : (k + 1) * STEP]).tobytes()).digest()
        digests.append(digest.hex())
    first = MIN_CACHED // STEP - 1  # index of the digest covering 1024 tokens
    cached = 0
    for k in range(steps - 1, first - 1, -1):
        if cache.hit(namespace, digests[k]):
            cached = (k + 1) * STEP
            break
    for k in range(first, steps):
        cache.put(namespace, digests[k], ttl_s)
    return cached
