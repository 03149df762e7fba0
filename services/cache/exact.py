"""Exact tier: the entry's hash read by key, so an exact repeat skips embedding entirely.

The key is `<index name>:<entry id>` with entry id = hash(scope key + normalised query text):
the same hash the semantic tier indexes (see `semantic.py`), read with one HMGET.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from .records import CachedAnswer
from .scope import ScopedQuery

FIELDS = ("response", "metadata", "scope")


class ExactTier:
    def __init__(self, client: Redis, key_of: Callable[[str], str]):
        self._client = client
        self._key_of = key_of

    async def get(self, query: ScopedQuery) -> CachedAnswer | None:
        response, metadata, scope = await self._client.hmget(self._key_of(query.entry_id), list(FIELDS))
        if response is None or scope is None or scope.decode() != query.scope_key:
            return None
        return CachedAnswer.from_metadata(response.decode(), metadata)
