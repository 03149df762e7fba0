"""Cache settings, read from the environment in `service.mount`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from costmesh.config import Env
from costmesh.errors import ConfigError

from .encodings import DEFAULT_MAX_BYTES
from .semantic import VECTOR_DTYPES
from .shadow import ShadowSettings
from .verifier import DEFAULT_MIN_SIMILARITY

VERIFIERS = ("learned", "rules", "cosine")
# shadow_rate: the share of semantic hits shadow-checked (its consent to them; 0 or absent: never);
# keep_shadow_pairs: its consent to keep the labelled pairs for retraining the verifier.
TENANT_POLICY_FIELDS = {"ttl_s": int, "allow_sampled": bool, "shadow_rate": float, "keep_shadow_pairs": bool}


def parse_tenant_policies(raw: str) -> dict[str, dict]:
    """`{"tenant": {"ttl_s": 3600, "allow_sampled": true}}` -> validated dict."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"COSTMESH_CACHE_TENANT_POLICIES: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("COSTMESH_CACHE_TENANT_POLICIES: must be an object of tenant -> policy")
    out: dict[str, dict] = {}
    for tenant, policy in data.items():
        if not isinstance(policy, dict) or set(policy) - TENANT_POLICY_FIELDS.keys():
            raise ConfigError(f"COSTMESH_CACHE_TENANT_POLICIES[{tenant!r}]: fields are {sorted(TENANT_POLICY_FIELDS)}")
        for key, kind in TENANT_POLICY_FIELDS.items():
            value = policy.get(key)
            number = kind is float and isinstance(value, int) and not isinstance(value, bool)
            if key in policy and not (isinstance(value, kind) or number):
                raise ConfigError(f"COSTMESH_CACHE_TENANT_POLICIES[{tenant!r}].{key}: must be {kind.__name__}")
        if not 0.0 <= policy.get("shadow_rate", 0.0) <= 1.0:
            raise ConfigError(f"COSTMESH_CACHE_TENANT_POLICIES[{tenant!r}].shadow_rate: must be in [0, 1]")
        if policy.get("ttl_s", 1) <= 0:
            raise ConfigError(f"COSTMESH_CACHE_TENANT_POLICIES[{tenant!r}].ttl_s: must be positive")
        out[tenant] = dict(policy)
    return out


@dataclass(frozen=True)
class CacheConfig:
    ttl_s: int = 86_400                 # COSTMESH_CACHE_TTL_S; a request's ttl_seconds wins
    min_similarity: float = DEFAULT_MIN_SIMILARITY  # COSTMESH_CACHE_MIN_SIMILARITY (cosine)
    redis_timeout_s: float = 0.25       # COSTMESH_CACHE_REDIS_TIMEOUT_MS
    redis_cooldown_s: float = 1.0       # COSTMESH_CACHE_REDIS_COOLDOWN_MS
    admin_timeout_s: float = 10.0       # COSTMESH_CACHE_ADMIN_TIMEOUT_MS: Invalidate and GetStats
    candidates: int = 3                 # COSTMESH_CACHE_CANDIDATES: KNN results the verifier sees
    allow_sampled: bool = False         # COSTMESH_CACHE_ALLOW_SAMPLED: cache temperature > 0
    index_prefix: str = "costmesh-cache"  # COSTMESH_CACHE_INDEX_PREFIX
    max_connections: int = 64           # COSTMESH_CACHE_REDIS_MAX_CONNECTIONS
    verifier: str = "learned"           # COSTMESH_CACHE_VERIFIER: learned | rules | cosine
    max_false_hit_rate: float = 0.05    # COSTMESH_CACHE_MAX_FALSE_HIT_RATE: picks the learned operating point
    verifier_artifact: str = ""         # COSTMESH_CACHE_VERIFIER_ARTIFACT: "" = the packaged one
    vector_dtype: str = "float16"       # COSTMESH_CACHE_VECTOR_DTYPE: float16 | float32 (each its own index)
    encoding_cache: int = 1024          # COSTMESH_CACHE_ENCODING_CACHE: candidate encodings kept (LRU; 0 = none)
    # COSTMESH_CACHE_ENCODING_CACHE_MB: and at most this much of their arrays (64)
    encoding_cache_mb: float = DEFAULT_MAX_BYTES / 2**20
    # COSTMESH_CACHE_TENANT_POLICIES: JSON {"tenant": {"ttl_s": 3600, "allow_sampled": true,
    # "shadow_rate": 0.1, "keep_shadow_pairs": true}}
    tenant_policies: dict = field(default_factory=dict)
    # Shadow checks: the live false-hit estimate and the per-tenant threshold (COSTMESH_CACHE_SHADOW_*)
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    # Admission control: lookups (stores) in flight at once; the next one is refused at once as
    # busy (RESOURCE_EXHAUSTED, reason OVERLOADED) instead of queueing past the caller's deadline.
    max_inflight_lookups: int = 48     # COSTMESH_CACHE_MAX_INFLIGHT_LOOKUPS
    max_inflight_stores: int = 16      # COSTMESH_CACHE_MAX_INFLIGHT_STORES

    @classmethod
    def from_env(cls, env: Env) -> "CacheConfig":
        config = cls(
            ttl_s=env.int("COSTMESH_CACHE_TTL_S", cls.ttl_s),
            min_similarity=env.float("COSTMESH_CACHE_MIN_SIMILARITY", cls.min_similarity),
            redis_timeout_s=env.float("COSTMESH_CACHE_REDIS_TIMEOUT_MS", cls.redis_timeout_s * 1000) / 1000,
            redis_cooldown_s=env.float("COSTMESH_CACHE_REDIS_COOLDOWN_MS", cls.redis_cooldown_s * 1000) / 1000,
            admin_timeout_s=env.float("COSTMESH_CACHE_ADMIN_TIMEOUT_MS", cls.admin_timeout_s * 1000) / 1000,
            candidates=env.int("COSTMESH_CACHE_CANDIDATES", cls.candidates),
            allow_sampled=env.bool("COSTMESH_CACHE_ALLOW_SAMPLED", cls.allow_sampled),
            index_prefix=env.str("COSTMESH_CACHE_INDEX_PREFIX", cls.index_prefix),
            max_connections=env.int("COSTMESH_CACHE_REDIS_MAX_CONNECTIONS", cls.max_connections),
            verifier=env.str("COSTMESH_CACHE_VERIFIER", cls.verifier),
            max_false_hit_rate=env.float("COSTMESH_CACHE_MAX_FALSE_HIT_RATE", cls.max_false_hit_rate),
            verifier_artifact=env.str("COSTMESH_CACHE_VERIFIER_ARTIFACT", cls.verifier_artifact),
            vector_dtype=env.str("COSTMESH_CACHE_VECTOR_DTYPE", cls.vector_dtype),
            encoding_cache=env.int("COSTMESH_CACHE_ENCODING_CACHE", cls.encoding_cache),
            encoding_cache_mb=env.float("COSTMESH_CACHE_ENCODING_CACHE_MB", cls.encoding_cache_mb),
            tenant_policies=parse_tenant_policies(env.str("COSTMESH_CACHE_TENANT_POLICIES", "")),
            max_inflight_lookups=env.int("COSTMESH_CACHE_MAX_INFLIGHT_LOOKUPS", cls.max_inflight_lookups),
            max_inflight_stores=env.int("COSTMESH_CACHE_MAX_INFLIGHT_STORES", cls.max_inflight_stores),
        )
        if config.verifier not in VERIFIERS:
            raise ConfigError(f"COSTMESH_CACHE_VERIFIER must be one of {', '.join(VERIFIERS)}")
        if not 0.0 <= config.max_false_hit_rate <= 1.0:
            raise ConfigError("COSTMESH_CACHE_MAX_FALSE_HIT_RATE must be in [0, 1]")
        if not 0.0 < config.min_similarity <= 1.0:
            raise ConfigError("COSTMESH_CACHE_MIN_SIMILARITY must be in (0, 1]")
        if config.vector_dtype not in VECTOR_DTYPES:
            raise ConfigError(f"COSTMESH_CACHE_VECTOR_DTYPE must be one of {', '.join(VECTOR_DTYPES)}")
        if config.encoding_cache < 0 or config.encoding_cache_mb < 0:
            raise ConfigError("COSTMESH_CACHE_ENCODING_CACHE and COSTMESH_CACHE_ENCODING_CACHE_MB must be >= 0")
        if config.max_inflight_lookups < 1 or config.max_inflight_stores < 1:
            raise ConfigError("COSTMESH_CACHE_MAX_INFLIGHT_LOOKUPS and _MAX_INFLIGHT_STORES must be >= 1")
        if config.ttl_s <= 0 or config.redis_timeout_s <= 0 or config.candidates <= 0 or config.admin_timeout_s <= 0:
            raise ConfigError("COSTMESH_CACHE_TTL_S, _REDIS_TIMEOUT_MS, _ADMIN_TIMEOUT_MS and _CANDIDATES "
                              "must be positive")
        return dataclasses.replace(config, shadow=ShadowSettings.from_env(env, config.max_false_hit_rate))
