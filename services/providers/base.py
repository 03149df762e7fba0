"""The adapter interface every provider implements, and the one place a Generation is priced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from opentelemetry import trace

from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling, Usage
from costmesh.pricing import cost_of, list_cost_of

# What `stream` yields: text deltas, then exactly one final Generation (empty text).
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
        timeout_s: float | None = None,
    ) -> Generation:
        """One complete answer with usage and exact cost."""
        ...

    def stream(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas as they come, then one final `Generation` with usage/cost and empty text."""
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
    )
    record_on_span(generation, list_cost_of(model, usage).total_usd)
    return generation


def record_on_span(generation: Generation, list_cost_usd: float | None = None) -> None:
    """GenAI semantic-convention attributes plus costmesh's cost on the current span."""
    span = trace.get_current_span()
    span.set_attribute("gen_ai.system", generation.provider)
    span.set_attribute("gen_ai.request.model", generation.model)
    span.set_attribute("gen_ai.usage.input_tokens", generation.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", generation.usage.output_tokens)
    span.set_attribute("gen_ai.response.finish_reasons", [generation.finish_reason])
    span.set_attribute("gen_ai.usage.cache_read.input_tokens", generation.usage.cache_read_tokens)
    span.set_attribute("gen_ai.usage.cache_creation.input_tokens", generation.usage.cache_write_tokens)
    span.set_attribute("costmesh.usage.cache_read_tokens", generation.usage.cache_read_tokens)
    span.set_attribute("costmesh.usage.cache_write_tokens", generation.usage.cache_write_tokens)
    span.set_attribute("costmesh.usage.cache_write_1h_tokens", generation.usage.cache_write_1h_tokens)
    cost = generation.cost
    span.set_attribute("costmesh.cost_usd", cost.total_usd)
    span.set_attribute("costmesh.cost.input_usd", cost.input_usd)
    span.set_attribute("costmesh.cost.cache_read_usd", cost.cache_read_usd)
    span.set_attribute("costmesh.cost.cache_write_usd", cost.cache_write_usd)
    span.set_attribute("costmesh.cost.output_usd", cost.output_usd)
    span.set_attribute("costmesh.cost.discount_usd", cost.discount_usd)
    if list_cost_usd is not None:  # the same tokens uncached, undiscounted: what caching and batch saved
        span.set_attribute("costmesh.list_cost_usd", list_cost_usd)
