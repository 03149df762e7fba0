"""The latency model: a base delay before the first token, then a pace per output token."""

from __future__ import annotations

import asyncio

from costmesh.services.simulator.config import SimulatorConfig


class Pacer:
    def __init__(self, config: SimulatorConfig):
        self.first_token_s = config.latency_ms / 1000.0
        self.per_token_s = config.ms_per_output_token / 1000.0

    async def first_token(self) -> None:
        if self.first_token_s > 0:
            await asyncio.sleep(self.first_token_s)

    async def tokens(self, count: int) -> None:
        if self.per_token_s > 0 and count > 0:
            await asyncio.sleep(self.per_token_s * count)

    async def whole(self, output_tokens: int) -> None:
        """A non-streamed answer: all of it at once."""
        delay = self.first_token_s + self.per_token_s * output_tokens
        if delay > 0:
            await asyncio.sleep(delay)
