"""An embedder loaded on first use (or in the background at start), so that a classifier
whose requests all carry the cache's embedding never pays for loading the model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class LazyEmbedder:
    """`embed_one` like `costmesh.embeddings.Embedder`; the model is built by `factory` in a thread."""

    def __init__(self, factory: Callable[[], Any], model_id: str, dims: int):
        self._factory = factory
        self.model_id = model_id
        self.dims = dims
        self._embedder: Any = None
        self._loading: asyncio.Task | None = None

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def preload(self) -> None:
        """Start loading now, in the background."""
        self._task()

    def _task(self) -> asyncio.Task:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        return self._loading

    async def _load(self) -> Any:
        embedder = await _in_daemon_thread(self._factory)
        if embedder.dims != self.dims:
            raise ValueError(f"the embedding model gives {embedder.dims} dimensions, the artifact needs {self.dims}")
        self._embedder = embedder
        return embedder

    async def embed_one(self, text: str) -> list[float]:
        embedder = self._embedder or await asyncio.shield(self._task())
        return await embedder.embed_one(text)

    async def aclose(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._embedder is not None:
            await self._embedder.aclose()


async def _in_daemon_thread(work: Callable[[], Any]) -> Any:
    """Run `work` in a daemon thread: unlike the loop's default executor, a shutdown (SIGTERM
    while the model is still loading) never waits for it to finish."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # delivered to the awaiting task
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=run, name="embedder-load", daemon=True).start()
    return await future
