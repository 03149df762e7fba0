"""Exact cost from the usage a provider reports, at the catalog's prices.

One function per provider reads that provider's own usage object (as the API returns it,
a mapping or an SDK model) and prices every field of it:

- Anthropic: `input_tokens` (uncached, after the last cache breakpoint), `cache_read_input_tokens`
  (x `cache_read`), `cache_creation_input_tokens` split by `cache_creation.ephemeral_5m_input_tokens`
  (x `cache_write_5m`) and `ephemeral_1h_input_tokens` (x `cache_write_1h`), `output_tokens`.
- OpenAI: `prompt_tokens` (cached ones included), `prompt_tokens_details.cached_tokens`
  (x `cache_read`; writes are free), `completion_tokens`.

The batch APIs take `batch_discount` (the catalog's, 0.5) off the whole call. Streaming and
non-streaming calls report the same usage, so they go through the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costmesh.catalog import ModelSpec
from costmesh.domain import Cost, Usage

PER_TOKEN = 1e-6  # catalog prices are per million tokens
MICROS_PER_USD = 1_000_000


def micro_usd(usd: float) -> int:
    """Dollars as a whole number of micro-dollars, rounded half to even: the one place an amount
    becomes the integer the protos carry beside the double (`*_micro_usd`)."""
    return round(usd * MICROS_PER_USD)


def cost_of(model: ModelSpec, usage: Usage, *, batch_discount: float = 0.0) -> Cost:
    """Cost of one call: uncached input, cache reads, 5m and 1h cache writes, output.

    `batch_discount` is the fraction taken off (0.5 for the batch APIs).
    """
    if not 0.0 <= batch_discount <= 1.0:
        raise ValueError(f"batch_discount must be within [0, 1], got {batch_discount}")
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
        cost.discount_usd = cost.total_usd * batch_discount
    return cost


def list_cost_of(model: ModelSpec, usage: Usage) -> Cost:
    """The same tokens at list price: every prompt token uncached, no discounts."""
    return cost_of(model, Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens))


def embedding_cost(tokens: int, usd_per_mtok: float) -> Cost:
    """An embedding call of the semantic cache (the catalog's `[embedding] usd_per_mtok`)."""
    return Cost(embedding_usd=tokens * usd_per_mtok * PER_TOKEN)


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, name: str) -> int:
    value = _field(obj, name)
    return int(value) if value else 0


def anthropic_usage(raw: Any) -> Usage:
    """Anthropic's usage (mapping or SDK object) -> Usage. Its `input_tokens` excludes cache reads and writes.

    Without the `cache_creation` split every write is a 5-minute write (the API's default TTL).
    """
    read = _int(raw, "cache_read_input_tokens")
    write = _int(raw, "cache_creation_input_tokens")
    write_1h = _int(_field(raw, "cache_creation"), "ephemeral_1h_input_tokens")
    return Usage(
        input_tokens=_int(raw, "input_tokens") + read + write,
        output_tokens=_int(raw, "output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
    )


def openai_usage(raw: Any) -> Usage:
    """OpenAI's usage (mapping or SDK object) -> Usage. `prompt_tokens` already includes cached tokens."""
    cached = _int(_field(raw, "prompt_tokens_details"), "cached_tokens")
    prompt = _int(raw, "prompt_tokens")
    return Usage(
        input_tokens=prompt,
        output_tokens=_int(raw, "completion_tokens"),
        cache_read_tokens=min(cached, prompt),
    )


def anthropic_cost(model: ModelSpec, raw_usage: Any, *, batch_discount: float = 0.0) -> Cost:
    """Exact cost of an Anthropic Messages call (or Message Batches result) from its usage."""
    return cost_of(model, anthropic_usage(raw_usage), batch_discount=batch_discount)


def openai_cost(model: ModelSpec, raw_usage: Any, *, batch_discount: float = 0.0) -> Cost:
    """Exact cost of an OpenAI Chat Completions call (or Batch API result) from its usage."""
    return cost_of(model, openai_usage(raw_usage), batch_discount=batch_discount)


USAGE_READERS = {"anthropic": anthropic_usage, "openai": openai_usage}
