"""What the interactive path (the gateway) and the batch path (the batches service) share about
the cache: the scope a request's answer is shared within, and the response for a cache hit.

One definition, so an answer stored by either path is found by the other."""

from __future__ import annotations

import hashlib

from costmesh.accounting import hit_savings
from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.convert import savings_to_pb

HIT_STATUS = {
    cache_pb2.HIT_KIND_EXACT: gw.CACHE_STATUS_EXACT_HIT,
    cache_pb2.HIT_KIND_SEMANTIC: gw.CACHE_STATUS_SEMANTIC_HIT,
}


def cache_scope(request: gw.CompleteRequest) -> cache_pb2.Scope:
    return cache_pb2.Scope(
        tenant_id=request.tenant_id,
        session_id=request.session_id,
        session_scoped=request.cache.session_scoped,
        model_policy=request.routing.model or _tier_policy(request.routing),
        output_spec=output_spec_digest(request),
        semantic_tool_answers=request.cache.semantic_tool_answers,
    )


def output_spec_digest(request: gw.CompleteRequest) -> str:
    """A digest of the request's tools, tool choice and response format ("" when it has none):
    an answer is shared only between requests that offer the same tools and ask the same format.
    It hashes the messages' deterministic encoding, so two requests whose schemas differ only in
    JSON formatting get different digests (a miss, never a wrong hit); the HTTP APIs send schemas
    re-serialised, so their callers always agree."""
    tools, fmt = request.tools, request.response_format
    if not tools.tools and fmt.type in (common.RESPONSE_FORMAT_TYPE_UNSPECIFIED, common.RESPONSE_FORMAT_TYPE_TEXT):
        return ""  # free text, no tools: a tool choice without tools changes nothing
    digest = hashlib.sha256(tools.SerializeToString(deterministic=True))
    digest.update(b"\x00" + fmt.SerializeToString(deterministic=True))
    return digest.hexdigest()[:32]


def _tier_policy(routing: gw.RoutingPolicy) -> str:
    if routing.min_tier or routing.max_tier:
        return f"auto:{routing.min_tier}-{routing.max_tier}"
    return "auto"


def hit_response(request_id: str, lookup: cache_pb2.LookupResponse) -> gw.CompleteResponse:
    """The answer for a cache hit: the embedding is all it cost; the saving is the baseline of
    the call that produced the entry, less that. Its usage is empty, as on every surface (gRPC,
    HTTP, the clients, the cost records): no model processed a token for it this time."""
    cost = common.CostBreakdown(embedding_usd=lookup.embedding_cost_usd, total_usd=lookup.embedding_cost_usd)
    savings = hit_savings(baseline=lookup.baseline_cost_usd, embedding=lookup.embedding_cost_usd)
    return gw.CompleteResponse(
        request_id=request_id,
        text=lookup.text,
        model=lookup.model,
        provider="cache",
        cached=True,
        cache_status=HIT_STATUS[lookup.kind],
        cache_similarity=lookup.similarity,
        cost=cost,
        baseline_cost_usd=lookup.baseline_cost_usd,
        saving_usd=savings.total_usd,
        savings=savings_to_pb(savings),
        finish_reason="tool_use" if lookup.tool_calls else "stop",
        tool_calls=lookup.tool_calls,
    )
