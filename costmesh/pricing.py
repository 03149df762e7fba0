"""Exact cost from the usage a provider reports, at the catalog's prices."""

from __future__ import annotations

from costmesh.catalog import ModelSpec
from costmesh.domain import Cost, Usage

PER_TOKEN = 1e-6  # catalog prices are per million tokens


def cost_of(model: ModelSpec, usage: Usage, *, batch_discount: float = 0.0) -> Cost:
    """Cost of one call: uncached input, cache reads, 5m and 1h cache writes, output.

    `batch_discount` is the fraction taken off (0.5 for the batch APIs).
    """
    price_in = model.input * PER_TOKEN
    write_5m = usage.cache_write_tokens - usage.cache_write_1h_tokens
    cost = Cost(
        input_usd=usage.uncached_input_tokens * price_in,
        cache_read_usd=usage.cache_read_tokens * price_in * model.cache_read,
        cache_write_usd=write_5m * price_in * model.cache_write_5m
        + usage.cache_write_1h_tokens * price_in * model.cache_write_1h,
        output_usd=usage.output_tokens * model.output * PER_TOKEN,
    )
    if batch_discount:
        cost.discount_usd = (cost.total_usd) * batch_discount
    return cost


def list_cost_of(model: ModelSpec, usage: Usage) -> Cost:
    """The same tokens at list price: every prompt token uncached, no discounts."""
    return cost_of(model, Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens))
