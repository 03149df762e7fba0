"""One answer's GenAI attributes and costmesh cost on the current span.

The providers' adapters record every call they price; the batches service records each batch
answer it bills: one set of attribute names for both."""

from __future__ import annotations

from opentelemetry import trace

from costmesh.domain import Generation


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
