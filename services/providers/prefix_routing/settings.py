"""How the vLLM adapter spreads requests over replicas, from the environment.

- COSTMESH_INFERENCE_ROUTING: `prefix` or `round_robin`; default `prefix` when a tokenizer is
  configured, else `round_robin`.
- COSTMESH_INFERENCE_TOKENIZER: the served model's directory or hub id (its tokenizer and chat template).
- COSTMESH_INFERENCE_BLOCK_SIZE: the engines' KV block size (vLLM `--block-size`; vLLM's default
  is 16 on GPU, 128 on CPU). Default 16. Must match the engines for the estimate to be exact.
- COSTMESH_INFERENCE_HASH_ALGO: `sha256` (vLLM's default) or `sha256_cbor`; PYTHONHASHSEED seeds
  the chain as it does in vLLM.
- COSTMESH_INFERENCE_PREFIX_MAX_BLOCKS: blocks remembered per replica (default 65536, ~13 MB);
  set it near the engine's KV-cache block count so the record forgets about when the engine does.
- COSTMESH_INFERENCE_MAX_IN_FLIGHT: requests in flight at which a replica counts as saturated (default 8).
- COSTMESH_INFERENCE_HEALTH_INTERVAL_S: seconds between health checks of each replica (default 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.services.providers.prefix_routing.block_hash import ALGORITHMS, DEFAULT_NONE_HASH_SEED

MODES = ("prefix", "round_robin")


@dataclass(frozen=True)
class RoutingSettings:
    mode: str = "round_robin"
    tokenizer: str | None = None
    block_size: int = 16
    hash_algo: str = "sha256"
    hash_seed: str = DEFAULT_NONE_HASH_SEED
    max_blocks: int = 65536
    max_in_flight: int = 8
    health_interval_s: float = 2.0

    @classmethod
    def from_env(cls, env: Env) -> "RoutingSettings":
        tokenizer = env.optional("COSTMESH_INFERENCE_TOKENIZER")
        mode = env.str("COSTMESH_INFERENCE_ROUTING", "prefix" if tokenizer else "round_robin")
        settings = cls(
            mode=mode,
            tokenizer=tokenizer,
            block_size=env.int("COSTMESH_INFERENCE_BLOCK_SIZE", 16),
            hash_algo=env.str("COSTMESH_INFERENCE_HASH_ALGO", "sha256"),
            hash_seed=env.str("PYTHONHASHSEED", DEFAULT_NONE_HASH_SEED),
            max_blocks=env.int("COSTMESH_INFERENCE_PREFIX_MAX_BLOCKS", 65536),
            max_in_flight=env.int("COSTMESH_INFERENCE_MAX_IN_FLIGHT", 8),
            health_interval_s=env.float("COSTMESH_INFERENCE_HEALTH_INTERVAL_S", 2.0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"COSTMESH_INFERENCE_ROUTING: must be one of {list(MODES)}, got {self.mode!r}")
        if self.mode == "prefix" and not self.tokenizer:
            raise ConfigError(
                "COSTMESH_INFERENCE_ROUTING=prefix needs COSTMESH_INFERENCE_TOKENIZER (the model's tokenizer)"
            )
        if self.hash_algo not in ALGORITHMS:
            raise ConfigError(
                f"COSTMESH_INFERENCE_HASH_ALGO: must be one of {list(ALGORITHMS)}, got {self.hash_algo!r}"
            )
        for name, value in (
            ("COSTMESH_INFERENCE_BLOCK_SIZE", self.block_size),
            ("COSTMESH_INFERENCE_PREFIX_MAX_BLOCKS", self.max_blocks),
            ("COSTMESH_INFERENCE_MAX_IN_FLIGHT", self.max_in_flight),
            ("COSTMESH_INFERENCE_HEALTH_INTERVAL_S", self.health_interval_s),
        ):
            if value <= 0:
                raise ConfigError(f"{name}: must be positive, got {value}")
