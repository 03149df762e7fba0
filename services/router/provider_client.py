"""The provider interface the cascade calls. The real one is `grpc_provider_client`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from costmesh.domain import Generation, Message, Sampling
from costmesh.output_spec import OutputSpec


@dataclass(frozen=True)
class ProviderCall:
    model: str
    messages: tuple[Message, ...]
    sampling: Sampling
    tenant_id: str = ""
    output: OutputSpec = OutputSpec()  # the tools offered and the answer's format


class ProviderClient(Protocol):
    """Raises costmesh errors (RateLimited, UpstreamError, UpstreamTimeout, Unavailable, ...)."""

    async def generate(self, call: ProviderCall, timeout_s: float) -> Generation: ...

    def stream(self, call: ProviderCall, timeout_s: float) -> AsyncIterator[str | Generation]:
        """Text deltas, then one `Generation` (text empty) with usage, cost, finish reason and the
        answer's complete tool calls."""
        ...
