"""Semantic tier: redisvl's SemanticCache over Redis vector search, scoped by tag filters.

Every entry is one Redis hash under `<index name>:<entry id>`, where the entry id is
hash(scope key + normalised query). The vector index makes it findable by meaning (this
module); the deterministic key makes it findable by text without embedding (`exact.py`).
One hash for both tiers: one TTL, and invalidation removes an answer from both at once.

Tags and tenants are stored as short hashes in TAG fields: no escaping, no case folding,
no separator inside a value can make one tenant's filter match another's entries.

Memory per entry: vectors are FLOAT16 by default (half the bytes, in the hash and in the
index's own copy; cosine changes by ~1e-3). Only the vector and the filter tags are indexed:
the prompt and answer stay in the hash and come back with a search, but get no full-text
index (nothing searches them by word), nor do the timestamps get numeric ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redisvl.extensions.cache.llm import SemanticCache
from redisvl.index import AsyncSearchIndex
from redisvl.query.filter import FilterExpression, Tag
from redisvl.utils.vectorize import BaseVectorizer

from .records import CachedAnswer
from .scope import ScopedQuery, entry_id_for, normalise_query

FILTERABLE_FIELDS = [
    {"name": "tenant", "type": "tag"},
    {"name": "scope", "type": "tag"},
    {"name": "tags", "type": "tag", "attrs": {"separator": ","}},
    {"name": "session", "type": "tag"},
]
UNINDEXED_FIELDS = ("prompt", "response", "inserted_at", "updated_at")  # stored, returned, not indexed
DELETE_PAGE = 500
VECTOR_DTYPES = ("float16", "float32")


def index_name_for(model_id: str, prefix: str = "costmesh-cache", dtype: str = "float32") -> str:
    """The index carries the embedding model and the vector type: a new model never compares
    vectors of two models, and float16 vectors never meet an index of float32 ones."""
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"vector dtype must be one of {VECTOR_DTYPES}, not {dtype!r}")
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")
    suffix = "" if dtype == "float32" else f"-{dtype.replace('float', 'f')}"
    return f"{prefix}-{slug}{suffix}"


def tag_value(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def tenant_filter(tenant_id: str) -> FilterExpression:
    return Tag("tenant") == tag_value(tenant_id)


class PrecomputedVectors(BaseVectorizer):
    """Stands in for a vectorizer: costmesh computes vectors itself (batched) and passes `vector=`."""

    def _embed(self, content: Any, **kwargs) -> list[float]:
        raise RuntimeError("the cache embeds with costmesh.embeddings.Embedder; pass vector=")

    def _embed_many(self, contents: list[Any], batch_size: int = 10, **kwargs) -> list[list[float]]:
        raise RuntimeError("the cache embeds with costmesh.embeddings.Embedder; pass vector=")


class ScopedSemanticCache(SemanticCache):
    """SemanticCache on our async client, with entry ids shared with the exact tier."""

    def __init__(self, name: str, *, model_id: str, dims: int, client: Redis, redis_url: str,
                 dtype: str = "float32"):
        super().__init__(
            name=name,
            ttl=None,  # per entry; and no TTL refresh on reads: an answer stays as fresh as it was stored
            vectorizer=PrecomputedVectors(model=model_id, dims=dims, dtype=dtype),
            filterable_fields=FILTERABLE_FIELDS,
            redis_url=redis_url,
            create_index=False,  # created (and re-created after a Redis restart) by SemanticTier
        )
        for field_name in UNINDEXED_FIELDS:  # still written and returned; just not indexed
            self._index.schema.remove_field(field_name)
        self._async_redis_client = client
        self._owns_redis_client = False

    def _make_entry_id(self, prompt: str, filters: dict[str, Any] | None = None) -> str:
        return entry_id_for((filters or {})["scope"], normalise_query(prompt))


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    prompt: str
    similarity: float
    answer: CachedAnswer


class SemanticTier:
    """Store, KNN-within-scope search, deletion by filter, and index upkeep."""

    def __init__(self, client: Redis, redis_url: str, *, model_id: str, dims: int, index_name: str,
                 dtype: str = "float32"):
        self.client = client
        self.index_name = index_name
        self.cache = ScopedSemanticCache(index_name, model_id=model_id, dims=dims, client=client, redis_url=redis_url,
                                         dtype=dtype)
        self.index = AsyncSearchIndex(schema=self.cache.index.schema, redis_client=client)

    def key(self, entry_id: str) -> str:
        return self.cache.index.key(entry_id)

    async def ensure_index(self) -> None:
        """Create the index unless it exists (a restarted Redis without persistence lost it)."""
        try:
            await self.index.create(overwrite=False)
        except Exception as exc:  # another replica created it between our check and create
            if "already exists" not in str(exc).lower():
                raise

    async def store(self, query: ScopedQuery, answer: CachedAnswer, vector: list[float], ttl_s: int) -> str:
        filters = {"tenant": tag_value(query.tenant_id), "scope": query.scope_key}
        if answer.tags:
            filters["tags"] = ",".join(tag_value(t) for t in answer.tags)
        if query.session_id:
            filters["session"] = tag_value(query.session_id)
        key = await self.cache.astore(
            prompt=query.query, response=answer.text, vector=vector,
            metadata=answer.metadata(), filters=filters, ttl=ttl_s,
        )
        return key.rsplit(":", 1)[-1]

    async def search(self, query: ScopedQuery, vector: list[float], *, num_results: int,
                     min_similarity: float) -> list[Candidate]:
        """Candidates of the same tenant and scope at or above `min_similarity`, best first."""
        scope = tenant_filter(query.tenant_id) & (Tag("scope") == query.scope_key)
        hits = await self.cache.acheck(
            vector=vector, num_results=num_results, filter_expression=scope,
            distance_threshold=min(2.0, max(0.0, 1.0 - min_similarity)),
        )
        candidates = [
            Candidate(
                entry_id=hit["entry_id"],
                prompt=hit["prompt"],
                similarity=1.0 - float(hit["vector_distance"]),
                answer=CachedAnswer.from_metadata(hit["response"], hit.get("metadata")),
            )
            for hit in hits
        ]
        return sorted(candidates, key=lambda c: -c.similarity)

    async def owner_of(self, entry_id: str) -> str | None:
        """The tenant tag of an entry, or None when it does not exist."""
        value = await self.client.hget(self.key(entry_id), "tenant")
        return value.decode() if value is not None else None

    async def delete_matching(self, expression: FilterExpression) -> int:
        """Delete every entry the filter matches; returns how many."""
        removed = 0
        while True:
            reply = await self.client.execute_command(
                "FT.SEARCH", self.index_name, str(expression), "NOCONTENT", "LIMIT", 0, DELETE_PAGE, "DIALECT", 2
            )
            keys = reply[1:]
            if not keys:
                return removed
            deleted = await self.client.delete(*keys)
            removed += deleted
            if len(keys) < DELETE_PAGE or deleted == 0:
                return removed

    async def delete_ids(self, entry_ids: list[str]) -> int:
        return await self.client.delete(*[self.key(i) for i in entry_ids]) if entry_ids else 0

    async def info(self) -> dict[str, Any]:
        return await self.index.info()
