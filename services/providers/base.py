"""The adapter interface every provider implements, and the one place a Generation is priced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling, ToolCall, Usage
from costmesh.observability.generation_span import record_on_span
from costmesh.output_spec import OutputSpec
from costmesh.pricing import cost_of, list_cost_of

__all__ = ["ProviderAdapter", "StreamEvent", "priced", "record_on_span"]

# What `stream` yields: text deltas, then exactly one final Generation (empty text) that carries
# the answer's complete tool calls (an adapter assembles its upstream's tool-call pieces itself).
StreamEvent = str | Generation


@runtime_checkable
class ProviderAdapter(Protocol):
    """One upstream provider. Adapters raise only `costmesh.errors` types."""

    name: str

    async def generate(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        output: OutputSpec = OutputSpec(),
        timeout_s: float | None = None,
    ) -> Generation:
        """One complete answer with usage and exact cost. `output`: the tools offered and the
        answer's format; an adapter that cannot serve them raises `InvalidRequest` naming the field."""
        ...

    def stream(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        output: OutputSpec = OutputSpec(),
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas as they come, then one final `Generation` with usage/cost, empty text and
        the complete tool calls."""
        ...

    async def close(self) -> None:
        """Release clients and connections."""
        ...


def priced(
    model: ModelSpec,
    *,
    text: str,
    usage: Usage,
    finish_reason: str,
    request_id: str = "",
    batch_discount: float = 0.0,
    tool_calls: tuple[ToolCall, ...] = (),
) -> Generation:
    """A Generation with its exact cost, recorded on the current span.

    Streamed and non-streamed calls (and batch results, with `batch_discount`) all end here,
    so the same usage always costs the same.
    """
    generation = Generation(
        text=text,
        model=model.id,
        provider=model.provider,
        usage=usage,
        cost=cost_of(model, usage, batch_discount=batch_discount),
        finish_reason=finish_reason,
        provider_request_id=request_id,
        tool_calls=tool_calls,
    )
    record_on_span(generation, list_cost_of(model, usage).total_usd)
    return generation
