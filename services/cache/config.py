"""The cache service's settings, read from the environment in `service.mount`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.settings import Settings, SkipEnv

from .encodings import DEFAULT_MAX_BYTES
from .shadow import ShadowSettings
from .shadow_metrics import DEFAULT_MAX_TENANTS
from .verifier import DEFAULT_MIN_SIMILARITY

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


class CacheConfig(Settings):
    """The cache service's settings (`COSTMESH_CACHE_*`); its shadow checks' are `shadow`."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_CACHE_")
    used_by: ClassVar[str] = "cache"

    redis_url: str | None = Field(None, validation_alias="REDIS_URL", description="the Redis the cache keeps "
                                  "its entries in (required): any Redis with the query engine (Redis 8, Redis Stack)")
    metrics_max_tenants: int = Field(DEFAULT_MAX_TENANTS, ge=1, validation_alias="COSTMESH_METRICS_MAX_TENANTS",
                                     description="tenant label values per replica on the metrics; later ones "
                                     "count as `other`")
    ttl_s: int = Field(86_400, gt=0, description="an entry's time to live (a request's `ttl_seconds` wins)")
    min_similarity: float = Field(DEFAULT_MIN_SIMILARITY, gt=0.0, le=1.0,
                                  description="the cosine floor of a candidate (the `cosine` verifier's threshold)")
    redis_timeout_ms: float = Field(250.0, gt=0.0, description="deadline of a lookup's or store's Redis call")
    redis_cooldown_ms: float = Field(1000.0, ge=0.0, description="after a Redis failure, Redis is skipped this "
                                     "long and those calls are misses")
    admin_timeout_ms: float = Field(10_000.0, gt=0.0, description="deadline of `Invalidate` and `GetStats`; their "
                                    "slow replies never send lookups into the cool-down")
    candidates: int = Field(3, gt=0, description="nearest neighbours the verifier sees")
    allow_sampled: bool = Field(False, description="cache answers to requests with temperature > 0")
    index_prefix: str = Field("costmesh-cache", min_length=1, description="the Redis index and key prefix")
    redis_max_connections: int = Field(64, gt=0, description="Redis connections in the pool")
    verifier: Literal["learned", "rules", "cosine"] = Field(
        "learned", description="`learned` (the packaged model at the false-hit bound), `rules` or `cosine`")
    max_false_hit_rate: float = Field(0.05, ge=0.0, le=1.0,
                                      description="the learned verifier's false-hit bound: picks its operating point")
    verifier_artifact: str = Field("", description="a verifier artifact of `costmesh train-verifier` instead of "
                                   "the packaged one")
    vector_dtype: Literal["float16", "float32"] = Field(
        "float16", description="vectors in Redis (each its own index: the index name says which)")
    encoding_cache: int = Field(1024, ge=0, description="candidates' token encodings kept in memory for the "
                                "verifier (0: none)")
    encoding_cache_mb: float = Field(DEFAULT_MAX_BYTES / 2**20, ge=0.0,
                                     description="and at most this many MB of them")
    tenant_policies: Annotated[dict, NoDecode] = Field(
        default_factory=dict, description='per tenant, JSON: `{"tenant": {"ttl_s": 3600, "allow_sampled": true, '
        '"shadow_rate": 0.1, "keep_shadow_pairs": true}}` (`shadow_rate`: the share of its semantic hits '
        'shadow-checked, its consent to them; `keep_shadow_pairs`: its consent to keep the labelled pairs)')
    max_inflight_lookups: int = Field(48, ge=1, description="admission control: lookups in flight at once; the "
                                      "next one, or one that recent latency says would finish after its caller's "
                                      "deadline, is refused at once as busy (`RESOURCE_EXHAUSTED`, `OVERLOADED`)")
    max_inflight_stores: int = Field(16, ge=1, description="admission control: stores in flight at once")
    # Shadow checks: the live false-hit estimate and the per-tenant threshold (COSTMESH_CACHE_SHADOW_*)
    shadow: SkipEnv[ShadowSettings] = Field(default_factory=ShadowSettings)

    @field_validator("tenant_policies", mode="before")
    @classmethod
    def _policies(cls, value: object) -> object:
        return parse_tenant_policies(value) if isinstance(value, str) else value

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000

    @property
    def redis_cooldown_s(self) -> float:
        return self.redis_cooldown_ms / 1000

    @property
    def admin_timeout_s(self) -> float:
        return self.admin_timeout_ms / 1000

    @classmethod
    def from_env(cls, env: Env | Mapping[str, str] | None = None) -> CacheConfig:
        return cls.load(env).model_copy(update={"shadow": ShadowSettings.load(env)})
