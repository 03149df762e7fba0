"""How the vLLM adapter spreads requests over replicas (`COSTMESH_INFERENCE_*`).

The routing is `prefix` (to the replica most likely to hold the prompt's prefix in its KV cache,
estimated with the engines' own block hashes) or `round_robin`; by default `prefix` when a
tokenizer is configured, else `round_robin`. The block size, hash algorithm and seed
(PYTHONHASHSEED, as in vLLM) must match the engines' for the estimate to be exact.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from costmesh.errors import ConfigError
from costmesh.services.providers.prefix_routing.block_hash import DEFAULT_NONE_HASH_SEED
from costmesh.settings import Settings


class RoutingSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="COSTMESH_INFERENCE_")
    used_by: ClassVar[str] = "providers"

    routing: Literal["prefix", "round_robin"] | None = Field(
        None, description="how requests are spread over the vLLM replicas: `prefix` (to the replica likeliest to "
        "hold the prompt's prefix in its KV cache) or `round_robin` (default: `prefix` when "
        "`COSTMESH_INFERENCE_TOKENIZER` is set, else `round_robin`)")
    tokenizer: str | None = Field(None, description="the served model's directory or hub id (its tokenizer and "
                                  "chat template), for `prefix` routing")
    block_size: int = Field(16, gt=0, description="the engines' KV block size (vLLM `--block-size`; vLLM's "
                            "default is 16 on GPU, 128 on CPU); must match the engines for the estimate to be exact")
    hash_algo: Literal["sha256", "sha256_cbor"] = Field(
        "sha256", description="the engines' prefix-caching hash: `sha256` (vLLM's default) or `sha256_cbor`")
    hash_seed: str = Field(DEFAULT_NONE_HASH_SEED, validation_alias="PYTHONHASHSEED",
                           description="seeds the prefix routing's block-hash chain as it does in vLLM")
    prefix_max_blocks: int = Field(65536, gt=0, description="KV blocks remembered per replica (~13 MB at the "
                                   "default); set it near the engine's KV-cache block count so the record forgets "
                                   "about when the engine does")
    max_in_flight: int = Field(8, gt=0, description="requests in flight at which a vLLM replica counts as saturated")
    health_interval_s: float = Field(2.0, gt=0.0, description="seconds between health checks of each vLLM replica")

    @property
    def mode(self) -> str:
        """`prefix` or `round_robin`: as set, else by whether a tokenizer is configured."""
        return self.routing or ("prefix" if self.tokenizer else "round_robin")

    @model_validator(mode="after")
    def _prefix_needs_tokenizer(self) -> Self:
        if self.mode == "prefix" and not self.tokenizer:
            raise ConfigError(
                "COSTMESH_INFERENCE_ROUTING=prefix needs COSTMESH_INFERENCE_TOKENIZER (the model's tokenizer)"
            )
        return self
