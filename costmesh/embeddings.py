"""Local sentence embeddings (MiniLM, offline) with micro-batching of concurrent calls.

Concurrent `embed()` calls waiting when the model is free (up to `max_batch` texts) are encoded
together on a worker thread (`costmesh.batching`), so the event loop never blocks on the model
and N concurrent requests cost about one batch; a lone call never waits for company. A text asked for
twice in one batch is encoded once. A batch runs as forward passes of texts of like length
(`costmesh.length_chunks`): one pass padded to its longest text wastes most of its time.

`threads` caps torch's intra-op threads (process-wide). Small batches of short texts gain
little from more threads, and on a machine whose cores are shared with other processes (the
mesh runs several) extra threads make each forward pass slower, not faster.
"""

from __future__ import annotations

from typing import Any

from costmesh.batching import MicroBatcher
from costmesh.length_chunks import text_chunks
from costmesh.model_files import (
    DEFAULT_BACKEND,
    DEFAULT_MODEL_ID,
    INT8_MODEL_ID,
    cap_threads,
    checked_backend,
    checked_model_id,
    default_model_path,
    load_sentence_transformer,
)
from costmesh.onnx_models import OnnxSentenceModel
from costmesh.verification.encoder import encode_full


def load_sentence_model(path: str, backend: str = DEFAULT_BACKEND, threads: int = 0,
                        model_id: str = DEFAULT_MODEL_ID) -> Any:
    """MiniLM on `backend`: "onnx" (ONNX Runtime, exported once and cached; the default) or
    "torch" (sentence-transformers). Both give the same vectors (cosine >= 0.99999).
    `model_id` INT8_MODEL_ID is MiniLM quantised to int8 (ONNX Runtime only)."""
    checked_model_id(model_id, checked_backend(backend))
    if backend == "onnx":
        return OnnxSentenceModel(path, threads=threads or 1, int8=model_id == INT8_MODEL_ID)
    return load_sentence_transformer(path)


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
        window_ms: float = 0.0,
        max_batch: int = 64,
        batching: bool = True,
        warmup: bool = True,
        threads: int = 0,
        backend: str = DEFAULT_BACKEND,
    ):
        self.model_id = model_id
        self.max_batch = max(1, max_batch)
        self.batching = batching
        self.threads = threads  # 0: the backend's default (one per core)
        self.backend = backend
        if threads > 0:
            cap_threads(backend, threads)
        self._model = model if model is not None else load_sentence_model(model_path or default_model_path(), backend,
                                                                           threads, model_id)
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dims: int = int(getter())
        self._batcher: MicroBatcher[tuple[str, bool], Any] = MicroBatcher(
            self._encode_items, window_ms=window_ms, max_batch=self.max_batch, batching=batching,
            name="embedder", initializer=lambda: cap_threads(backend, threads))
        self.batches = 0  # batches run (each one or more forward passes), for tests and metrics
        self.texts_embedded = 0
        if warmup:  # the first forward passes are slow (kernel set-up): pay for them at start
            self.encode(["warm up the embedding model", "a second, somewhat longer sentence to warm up with"])
            self.batches = self.texts_embedded = 0

    def encode(self, texts: list[str]) -> list[list[float]]:
        """Synchronous encode (runs the model on the calling thread)."""
        texts = list(texts)
        out: list[list[float]] = [[] for _ in texts]
        for chunk in text_chunks(self._model, texts, self.max_batch):  # passes of like length
            vectors = self._model.encode([texts[i] for i in chunk], batch_size=len(chunk), normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
            for position, row in zip(chunk, vectors):
                out[position] = [float(x) for x in row]
        self.batches += 1
        self.texts_embedded += len(texts)
        return out

    def encode_full(self, texts: list[str]) -> list[Any]:
        """Synchronous encode keeping token embeddings (`costmesh.verification.encoder.Encoded`)."""
        encoded = encode_full(self._model, list(texts), batch_size=self.max_batch)
        self.batches += 1
        self.texts_embedded += len(texts)
        return encoded

    def _encode_items(self, items: list[tuple[str, bool]]) -> list[Any]:
        """One batch over the distinct texts of (text, wants tokens) items, in order.
        One batch gives both kinds: an item that only wants the vector gets it as a list."""
        full = any(wants for _, wants in items)
        unique = list(dict.fromkeys(text for text, _ in items))
        by_text = dict(zip(unique, self.encode_full(unique) if full else self.encode(unique)))
        if not full:
            return [by_text[text] for text, _ in items]
        return [by_text[text] if wants else [float(x) for x in by_text[text].vector] for text, wants in items]

    async def embed(self, texts: list[str] | tuple[str, ...]) -> list[list[float]]:
        """Embeddings of `texts`, in order, computed off the event loop."""
        return await self._submit(list(texts), full=False)

    async def embed_full(self, texts: list[str] | tuple[str, ...]) -> list[Any]:
        """Sentence and token embeddings (`Encoded`) of `texts`, micro-batched like `embed`."""
        return await self._submit(list(texts), full=True)

    async def _submit(self, texts: list[str], full: bool) -> list[Any]:
        return await self._batcher.submit([(text, full) for text in texts])

    async def embed_one(self, text: str) -> list[float]:
        return (await self.embed([text]))[0]

    async def aclose(self) -> None:
        """Stop the batcher and the worker thread."""
        await self._batcher.aclose()
