"""Embeddings of many prompts for training and evaluation, with an on-disk cache keyed by the
embedding model and the prompts themselves (a re-run on the same book skips the model)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CHUNK = 256

EncodeFn = Callable[[list[str]], Sequence[Sequence[float]]]


def cache_dir() -> Path:
    base = os.environ.get("COSTMESH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "costmesh"
    )
    return Path(base) / "embeddings"


def _key(model_id: str, prompts: Sequence[str]) -> str:
    digest = hashlib.sha256(model_id.encode())
    for prompt in prompts:
        digest.update(b"\0" + prompt.encode("utf-8"))
    return digest.hexdigest()[:32]


def default_encoder(model_id: str) -> tuple[EncodeFn, int]:
    """The local MiniLM's synchronous encode, and its dimensions."""
    from costmesh.embeddings import Embedder

    embedder = Embedder(model_id=model_id, warmup=False)
    return embedder.encode, embedder.dims


def embed_prompts(
    prompts: Sequence[str],
    model_id: str,
    encode: EncodeFn | None = None,
    *,
    use_cache: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """One float32 row per prompt. `encode` defaults to the local MiniLM (loaded only on a cache miss)."""
    path = cache_dir() / f"{_key(model_id, prompts)}.npy"
    if use_cache and path.exists():
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(prompts):
            return cached
    if encode is None:
        encode, _ = default_encoder(model_id)
    rows: list[np.ndarray] = []
    for start in range(0, len(prompts), CHUNK):
        rows.append(np.asarray(encode(list(prompts[start : start + CHUNK])), dtype=np.float32))
        if progress:
            print(f"\r  embedded {min(start + CHUNK, len(prompts))}/{len(prompts)} prompts", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    matrix = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, matrix)
            os.replace(tmp, path)
        except OSError:
            pass  # the cache is an optimisation only
    return matrix
