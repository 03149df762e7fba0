"""The provider interface the cascade calls. The real one is `grpc_provider_client`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from costmesh.domain import Generation, Message, Sampling


@dataclass(frozen=True)
class ProviderCall:
    model: str
    messages: tuple[Message, ...]
    sampling: Sampling
    tenant_id: str = ""


class ProviderClient(Protocol):
    """Raises costmesh errors (RateLimited, UpstreamError, UpstreamTimeout, Unavailable, ...)."""

    async def generate(self, call: ProviderCall, timeout_s: float) -> Generation: ...

    def stream(self, call: ProviderCall, timeout_s: float) -> AsyncIterator[str | Generation]:
        """Text deltas, then one `Generation` (text empty) with usage, cost and finish reason."""
        ...
