"""What the gateway's request path shares with the batches service about the cache (the scope an
answer is shared within, the response for a hit): it lives in the core, `costmesh.cache_answers`."""

from __future__ import annotations

from costmesh.cache_answers import HIT_STATUS, cache_scope, hit_response

__all__ = ["HIT_STATUS", "cache_scope", "hit_response"]
