"""The bill in one place: the all-premium baseline, and what each cost layer saved against it.

Every path that answers bills through here (the router's cascade and the providers for the
baseline; the gateway's routed answers and cache hits, and the batches service for the
savings), so the same answer shows the same baseline and the same saving per layer wherever
it was served.

- The baseline is what the request would have cost with no costmesh: the same input and
  output tokens on the catalog's premium model, at list price (no cache, no discount).
- Savings split baseline - paid by layer: routing (or self-hosted inference) saved
  baseline - list price of the models that answered; the providers' prompt caches saved list
  price - what was paid before any batch discount; the batch API saved its discount; the
  semantic cache saved the whole baseline of a hit and costs its embedding calls.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from costmesh.catalog import Catalog
from costmesh.domain import Usage
from costmesh.pricing import MICROS_PER_USD, list_cost_of, micro_usd

SELF_HOSTED_PROVIDERS = frozenset({"vllm"})  # their savings are inference's, not routing's


@dataclass(frozen=True)
class Savings:
    """Dollars saved against the baseline, per cost layer (`costmesh.common.v1.LayerSavings`).

    The services bill with it (unrounded amounts); the Python client returns it, read from a
    response's whole micro-dollars (`costmesh.client.types.savings_from_pb`). It imports no
    more than the catalog and pricing, so the client can."""

    cache_usd: float = 0.0
    routing_usd: float = 0.0
    prompt_caching_usd: float = 0.0
    batch_usd: float = 0.0
    inference_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        """The layers' sum. Layers in whole micro-dollars (what the client reads) are summed in
        micro-dollars, so the total is one too (0.003, not 0.0030000000000000005); any other
        amounts (the services' unrounded ones) are summed as they are."""
        parts = [getattr(self, f.name) for f in fields(self)]
        micros = [micro_usd(part) for part in parts]
        if all(micro / MICROS_PER_USD == part for micro, part in zip(micros, parts)):
            return sum(micros) / MICROS_PER_USD
        return sum(parts)


def baseline_usd(catalog: Catalog, usage: Usage) -> float:
    """The same input and output tokens on the premium model, at list price."""
    return list_cost_of(catalog.premium, Usage(input_tokens=usage.input_tokens,
                                               output_tokens=usage.output_tokens)).total_usd


def answer_savings(
    *,
    baseline: float,
    list_cost: float,
    paid: float,
    discount: float = 0.0,
    embedding: float = 0.0,
    provider: str = "",
) -> Savings:
    """A model's answer. `list_cost`: every attempt at list price; `paid`: what the attempts
    cost (after any batch `discount`); `embedding`: the cache lookup's embedding calls."""
    models = baseline - list_cost
    self_hosted = provider in SELF_HOSTED_PROVIDERS
    return Savings(
        cache_usd=-embedding,
        routing_usd=0.0 if self_hosted else models,
        prompt_caching_usd=list_cost - (paid + discount),
        batch_usd=discount,
        inference_usd=models if self_hosted else 0.0,
    )


def hit_savings(*, baseline: float, embedding: float = 0.0) -> Savings:
    """A cache hit: the baseline of the call that produced the entry, less the embedding."""
    return Savings(cache_usd=baseline - embedding)
