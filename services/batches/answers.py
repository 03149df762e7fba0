"""A batch answer's bill, its span and its cache entry.

The bill is the interactive one's shape (cost with the cache lookup's embedding, the all-premium
baseline, the saving per layer), with the batch discount as its own layer: the batch API answers
one call, so there are no attempts to add up.
"""

from __future__ import annotations

from opentelemetry import trace

from costmesh import convert
from costmesh.accounting import answer_savings, baseline_usd
from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cache_answers import cache_scope
from costmesh.catalog import Catalog
from costmesh.domain import Generation
from costmesh.observability.generation_span import record_on_span
from costmesh.pricing import list_cost_of
from costmesh.routing.output_checks import output_problems

from .jobs import Item


def answered(catalog: Catalog, item: Item, generation: Generation) -> gw.CompleteResponse:
    spec = catalog.model(generation.model)
    listed = list_cost_of(spec, generation.usage).total_usd
    usage = generation.usage
    baseline = baseline_usd(catalog, usage)
    cost = convert.cost_to_pb(generation.cost)
    cost.embedding_usd += item.embedding_usd
    cost.total_usd += item.embedding_usd
    savings = convert.savings_to_pb(answer_savings(
        baseline=baseline, list_cost=listed, paid=generation.cost.total_usd,
        discount=generation.cost.discount_usd, embedding=item.embedding_usd, provider=generation.provider))
    return gw.CompleteResponse(
        request_id=item.request_id,
        text=generation.text,
        model=generation.model,
        provider=generation.provider,
        tier=item.tier,
        classified_tier=item.classified_tier,
        complexity_score=item.score,
        cached=False,
        cache_status=item.cache_status,
        usage=convert.usage_to_pb(usage),
        cost=cost,
        baseline_cost_usd=baseline,
        saving_usd=baseline - cost.total_usd,
        savings=savings,
        attempts=1,
        finish_reason=generation.finish_reason,
        tool_calls=convert.tool_calls_to_pb(generation.tool_calls),
    )


def trace_answer(
    tracer: trace.Tracer, catalog: Catalog, job_id: str, item: Item, generation: Generation,
    response: gw.CompleteResponse, tenant_id: str,
) -> None:
    """One span per answered request, carrying its cost and the baseline beside it."""
    with tracer.start_as_current_span("costmesh.batch.answer") as span:
        record_on_span(generation, list_cost_of(catalog.model(generation.model), generation.usage).total_usd)
        span.set_attribute("costmesh.batch_id", job_id)
        span.set_attribute("costmesh.request_id", item.request_id)
        span.set_attribute("costmesh.tenant_id", tenant_id)
        span.set_attribute("costmesh.baseline_cost_usd", response.baseline_cost_usd)
        span.set_attribute("costmesh.saving_usd", response.saving_usd)
        span.set_attribute("costmesh.cost_usd", response.cost.total_usd)


def store_request(
    req: gw.CompleteRequest, generation: Generation, response: gw.CompleteResponse
) -> cache_pb2.StoreRequest:
    """The cache entry for an answer: in the scope the interactive path looks it up in. No gate
    read a batch answer, so one whose shape is wrong (a tool call off its schema, JSON that does
    not validate: `output_checks`) is marked as not passed, and the cache refuses it."""
    spec = convert.output_spec_from_pb(req.tools, req.response_format)
    return cache_pb2.StoreRequest(
        scope=cache_scope(req),
        messages=req.messages,
        sampling=req.sampling,
        text=generation.text,
        model=generation.model,
        usage=response.usage,
        baseline_cost_usd=response.baseline_cost_usd,
        tags=req.cache.tags,
        ttl_seconds=req.cache.ttl_seconds,
        finish_reason=generation.finish_reason,
        quality_passed=not output_problems(generation, spec),
        tool_calls=convert.tool_calls_to_pb(generation.tool_calls),
    )
