"""The chain of block hashes vLLM's prefix cache keys KV blocks by, computed outside the engine.

vLLM V1 (`vllm.v1.core.kv_cache_utils.hash_block_tokens`) hashes every *full* block of
`block_size` prompt tokens as `hash_fn((parent_hash, tuple(block_token_ids), extra_keys))`, the
parent of the first block being `NONE_HASH = hash_fn(seed)`; the seed is `PYTHONHASHSEED` when set,
else the fixed "vllm-none-hash" for the cryptographic algorithms. `sha256` pickles its input with
the highest protocol, `sha256_cbor` serialises it as canonical CBOR. Text-only requests without
LoRA or a cache salt have `extra_keys=None`. The functions here reproduce that byte for byte
(tests/inference checks it against vLLM itself), so hash i of a chain names exactly the KV block
the engine would look up for tokens [0, (i+1)*block_size).

The xxhash algorithms use a random per-process seed in vLLM unless PYTHONHASHSEED is set, so
nobody outside the engine can reproduce them; routing does not need to: it only compares chains
it computed itself, and equal chains mean equal token blocks whatever the hash function. Such
deployments route with sha256 chains here while the engine uses xxhash, which is safe.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from costmesh.errors import ConfigError

DEFAULT_NONE_HASH_SEED = "vllm-none-hash"
ALGORITHMS = ("sha256", "sha256_cbor")


def sha256_pickle(value: Any) -> bytes:
    return hashlib.sha256(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).digest()


def sha256_cbor(value: Any) -> bytes:
    import cbor2  # only needed for this algorithm

    return hashlib.sha256(cbor2.dumps(value, canonical=True)).digest()


def hash_function(name: str) -> Callable[[Any], bytes]:
    if name == "sha256":
        return sha256_pickle
    if name == "sha256_cbor":
        try:
            import cbor2  # noqa: F401
        except ImportError:
            raise ConfigError("COSTMESH_INFERENCE_HASH_ALGO=sha256_cbor needs the cbor2 package") from None
        return sha256_cbor
    raise ConfigError(f"COSTMESH_INFERENCE_HASH_ALGO: must be one of {list(ALGORITHMS)}, got {name!r}")


class BlockHasher:
    """Hash chains over full token blocks, as the engine computes them."""

    def __init__(self, block_size: int, algorithm: str = "sha256", seed: str = DEFAULT_NONE_HASH_SEED):
        if block_size <= 0:
            raise ConfigError("COSTMESH_INFERENCE_BLOCK_SIZE: must be positive")
        self.block_size = block_size
        self.algorithm = algorithm
        self._hash = hash_function(algorithm)
        self.none_hash = self._hash(seed)

    def chain(self, token_ids: Sequence[int]) -> list[bytes]:
        """One hash per full block; a trailing partial block is not hashed (nor cached by vLLM)."""
        hashes: list[bytes] = []
        parent = self.none_hash
        size = self.block_size
        for start in range(0, len(token_ids) - size + 1, size):
            parent = self._hash((parent, tuple(token_ids[start : start + size]), None))
            hashes.append(parent)
        return hashes
