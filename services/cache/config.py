"""Cache settings, read from the environment in `service.mount`."""

from __future__ import annotations

from dataclasses import dataclass

from costmesh.config import Env
from costmesh.errors import ConfigError

from .verifier import DEFAULT_MIN_SIMILARITY


@dataclass(frozen=True)
class CacheConfig:
    ttl_s: int = 86_400                 # COSTMESH_CACHE_TTL_S; a request's ttl_seconds wins
    min_similarity: float = DEFAULT_MIN_SIMILARITY  # COSTMESH_CACHE_MIN_SIMILARITY (cosine)
    redis_timeout_s: float = 0.25       # COSTMESH_CACHE_REDIS_TIMEOUT_MS
    redis_cooldown_s: float = 1.0       # COSTMESH_CACHE_REDIS_COOLDOWN_MS
    candidates: int = 3                 # COSTMESH_CACHE_CANDIDATES: KNN results the verifier sees
    allow_sampled: bool = False         # COSTMESH_CACHE_ALLOW_SAMPLED: cache temperature > 0
    index_prefix: str = "costmesh-cache"  # COSTMESH_CACHE_INDEX_PREFIX
    max_connections: int = 64           # COSTMESH_CACHE_REDIS_MAX_CONNECTIONS

    @classmethod
    def from_env(cls, env: Env) -> "CacheConfig":
        config = cls(
            ttl_s=env.int("COSTMESH_CACHE_TTL_S", cls.ttl_s),
            min_similarity=env.float("COSTMESH_CACHE_MIN_SIMILARITY", cls.min_similarity),
            redis_timeout_s=env.float("COSTMESH_CACHE_REDIS_TIMEOUT_MS", cls.redis_timeout_s * 1000) / 1000,
            redis_cooldown_s=env.float("COSTMESH_CACHE_REDIS_COOLDOWN_MS", cls.redis_cooldown_s * 1000) / 1000,
            candidates=env.int("COSTMESH_CACHE_CANDIDATES", cls.candidates),
            allow_sampled=env.bool("COSTMESH_CACHE_ALLOW_SAMPLED", cls.allow_sampled),
            index_prefix=env.str("COSTMESH_CACHE_INDEX_PREFIX", cls.index_prefix),
            max_connections=env.int("COSTMESH_CACHE_REDIS_MAX_CONNECTIONS", cls.max_connections),
        )
        if not 0.0 < config.min_similarity <= 1.0:
            raise ConfigError("COSTMESH_CACHE_MIN_SIMILARITY must be in (0, 1]")
        if config.ttl_s <= 0 or config.redis_timeout_s <= 0 or config.candidates <= 0:
            raise ConfigError("COSTMESH_CACHE_TTL_S, _REDIS_TIMEOUT_MS and _CANDIDATES must be positive")
        return config
