"""What both HTTP APIs share beyond their own formats: the `model` (`auto` or a catalog model),
costmesh's request options (the body's `costmesh` object) and costmesh's extras in a reply
(the response's `costmesh` object and the `x-costmesh-*` headers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog, Tier
from costmesh.convert import with_micro_usd, with_rounded_usd
from costmesh.errors import InvalidRequest
from costmesh.gateway.http.json_body import INT32_MAX, boolean, integer, key_name
from costmesh.vocabulary import TIER_NAMES, cache_status_name, tier_name

AUTO_MODEL = "auto"  # let costmesh pick: cache, classifier, cascade
MAX_MODEL_CHARS = 128
OPTIONS = frozenset({"cache", "routing", "session_id", "request_id"})
CACHE_OPTIONS = frozenset({"bypass", "ttl_seconds", "tags", "session_scoped", "semantic_tool_answers"})
ROUTING_OPTIONS = frozenset({"min_tier", "max_tier"})
CACHE_STATUS = {value: cache_status_name(value) for value in gw.CacheStatus.values() if value}


def route_model(model: Any, catalog: Catalog, request: gw.CompleteRequest) -> str:
    """The body's `model`: `auto`, or a catalog model that pins the route."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: required; use 'auto' to let costmesh choose, or a model of GET /v1/models")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"model: longer than {MAX_MODEL_CHARS} characters; see GET /v1/models")
    if model != AUTO_MODEL:
        if model not in catalog.models:
            raise InvalidRequest(f"model: {model!r} is not served here; see GET /v1/models")
        request.routing.model = model
    return model


def apply_options(raw: Any, request: gw.CompleteRequest) -> None:
    """The body's `costmesh` object onto the request."""
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise InvalidRequest("costmesh: expected an object")
    for key in sorted(set(raw) - OPTIONS):
        raise InvalidRequest(f"costmesh.{key_name(key)}: unknown option")
    for key in ("session_id", "request_id"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise InvalidRequest(f"costmesh.{key}: expected a string")
            setattr(request, key, raw[key])
    cache = raw.get("cache") or {}
    if not isinstance(cache, Mapping):
        raise InvalidRequest("costmesh.cache: expected an object")
    for key in sorted(set(cache) - CACHE_OPTIONS):
        raise InvalidRequest(f"costmesh.cache.{key_name(key)}: unknown option")
    for key in ("bypass", "session_scoped", "semantic_tool_answers"):
        setattr(request.cache, key, boolean(cache.get(key, False), f"costmesh.cache.{key}"))
    ttl = cache.get("ttl_seconds", 0)
    request.cache.ttl_seconds = integer(ttl, "costmesh.cache.ttl_seconds", 0, INT32_MAX,
                                        "must be a whole number of seconds")
    tags = cache.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidRequest("costmesh.cache.tags: expected an array of strings")
    request.cache.tags.extend(tags)
    routing = raw.get("routing") or {}
    if not isinstance(routing, Mapping):
        raise InvalidRequest("costmesh.routing: expected an object")
    for key in sorted(set(routing) - ROUTING_OPTIONS):
        raise InvalidRequest(f"costmesh.routing.{key_name(key)}: unknown option; pin a model with `model`")
    for key in ("min_tier", "max_tier"):
        if routing.get(key) is not None:
            name = routing[key]
            if not isinstance(name, str) or name.upper() not in Tier.__members__:
                raise InvalidRequest(f"costmesh.routing.{key}: one of {list(TIER_NAMES)}")
            setattr(request.routing, key, int(Tier[name.upper()]))


def extras(response: gw.CompleteResponse) -> dict[str, Any]:
    """The documented `costmesh` extension object of a reply: tiers and the cache status by name,
    amounts in whole micro-dollars (as over gRPC)."""
    money = _rounded(response)
    cost = money.cost
    savings = money.savings
    return {
        "request_id": response.request_id,
        "provider": response.provider,
        "cache": {"hit": response.cached, "status": CACHE_STATUS.get(response.cache_status, "unspecified"),
                  "similarity": response.cache_similarity},
        "tier": tier_name(response.tier) or None,
        "classified_tier": tier_name(response.classified_tier) or None,
        "complexity_score": response.complexity_score,
        "attempts": response.attempts,
        "cost_usd": cost.total_usd,
        "cost": {"input_usd": cost.input_usd, "cache_read_usd": cost.cache_read_usd,
                 "cache_write_usd": cost.cache_write_usd, "output_usd": cost.output_usd,
                 "embedding_usd": cost.embedding_usd, "discount_usd": cost.discount_usd,
                 "total_usd": cost.total_usd},
        "baseline_cost_usd": money.baseline_cost_usd,
        "saving_usd": money.saving_usd,
        "savings": {"cache_usd": savings.cache_usd, "routing_usd": savings.routing_usd,
                    "prompt_caching_usd": savings.prompt_caching_usd, "batch_usd": savings.batch_usd,
                    "inference_usd": savings.inference_usd},
    }


def _rounded(response: gw.CompleteResponse) -> gw.CompleteResponse:
    """The answer's amounts as the gRPC API sends them (`convert.with_rounded_usd`), in a copy."""
    money = gw.CompleteResponse(cost=response.cost, baseline_cost_usd=response.baseline_cost_usd,
                                saving_usd=response.saving_usd, savings=response.savings)
    return with_rounded_usd(with_micro_usd(money))


def extra_headers(response: gw.CompleteResponse) -> dict[str, str]:
    """The same extras as `x-costmesh-*` response headers."""
    data = extras(response)
    return {
        "x-costmesh-request-id": response.request_id,
        "x-costmesh-cache": data["cache"]["status"],
        "x-costmesh-cache-hit": "true" if response.cached else "false",
        "x-costmesh-tier": data["tier"] or "",
        "x-costmesh-model": response.model,
        "x-costmesh-provider": response.provider,
        "x-costmesh-cost-usd": f"{data['cost_usd']:.6f}",
        "x-costmesh-baseline-usd": f"{data['baseline_cost_usd']:.6f}",
        "x-costmesh-saving-usd": f"{data['saving_usd']:.6f}",
    }

