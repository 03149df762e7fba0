"""The engine of a running service: loaded in the background; until then calls are Unavailable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from costmesh.errors import Unavailable

from .engine import InferenceEngine


class EngineSlot:
    def __init__(self, log: Any):
        self._log = log
        self._engine: InferenceEngine | None = None
        self._error: str | None = None
        self._closed = False
        self._task: asyncio.Task | None = None

    def get(self) -> InferenceEngine:
        if self._engine is not None:
            return self._engine
        if self._error is not None:
            raise Unavailable(f"engine failed to load: {self._error}")
        if self._closed:
            raise Unavailable("engine stopped")
        raise Unavailable("engine loading")

    def start_loading(
        self, start: Callable[[], Awaitable[InferenceEngine]], on_ready: Callable[[], Awaitable[None]]
    ) -> None:
        self._task = asyncio.create_task(self._load(start, on_ready), name="inference-engine-load")

    async def _load(
        self, start: Callable[[], Awaitable[InferenceEngine]], on_ready: Callable[[], Awaitable[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        self._log.info("engine loading")
        try:
            engine = await start()
        except Exception as exc:  # the service stays up, NOT_SERVING, and says why
            self._error = f"{type(exc).__name__}: {exc}"
            self._log.error("engine failed to load", error=self._error)
            return
        if self._closed:  # stopped while loading
            await engine.close()
            return
        self._engine = engine
        self._log.info("engine ready", model=engine.model, load_s=round(loop.time() - began, 1))
        await on_ready()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            # The load runs in a thread that cannot be interrupted: let it finish, then close what it built.
            await asyncio.shield(self._task)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.close()
