"""What both HTTP APIs share beyond their own formats: the `model` (`auto` or a catalog model),
costmesh's request options (the body's `costmesh` object, `CostmeshOptions`) and costmesh's extras
in a reply (the response's `costmesh` object and the `x-costmesh-*` headers).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog, Tier
from costmesh.convert import with_micro_usd, with_rounded_usd
from costmesh.errors import InvalidRequest
from costmesh.gateway.http.json_body import INT32_MAX
from costmesh.gateway.http.request_model import Closed, fail, integer, invalid_request, or_empty, says
from costmesh.vocabulary import TIER_NAMES, cache_status_name, tier_name

AUTO_MODEL = "auto"  # let costmesh pick: cache, classifier, cascade
MAX_MODEL_CHARS = 128
CACHE_STATUS = {value: cache_status_name(value) for value in gw.CacheStatus.values() if value}
# What an unknown key of the options is, by the path of the object it is in.
UNKNOWN_OPTION = {"costmesh": "unknown option", "costmesh.cache": "unknown option",
                  "costmesh.routing": "unknown option; pin a model with `model`"}


Seconds = integer(0, INT32_MAX, "must be a whole number of seconds")


def _tier(value: Any) -> Tier | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in Tier.__members__:
        fail(f"one of {list(TIER_NAMES)}")
    return Tier[value.upper()]


TierName = Annotated[Tier | None, BeforeValidator(_tier)]  # `simple`, case insensitive


class CacheOptions(Closed):
    bypass: bool = False
    session_scoped: bool = False
    semantic_tool_answers: bool = False
    ttl_seconds: Seconds = 0
    tags: Annotated[list[str], says("expected an array of strings", anywhere=True)] = []


class RoutingOptions(Closed):
    min_tier: TierName = None
    max_tier: TierName = None


class CostmeshOptions(Closed):
    """The body's `costmesh` object (with the OpenAI SDK: `extra_body={"costmesh": {...}}`)."""

    session_id: str = ""
    request_id: str = ""
    cache: Annotated[CacheOptions, BeforeValidator(or_empty)] = CacheOptions()
    routing: Annotated[RoutingOptions, BeforeValidator(or_empty)] = RoutingOptions()

    def apply(self, request: gw.CompleteRequest) -> None:
        request.session_id = self.session_id
        request.request_id = self.request_id
        cache = self.cache
        request.cache.bypass = cache.bypass
        request.cache.session_scoped = cache.session_scoped
        request.cache.semantic_tool_answers = cache.semantic_tool_answers
        request.cache.ttl_seconds = cache.ttl_seconds
        request.cache.tags.extend(cache.tags)
        if self.routing.min_tier is not None:
            request.routing.min_tier = int(self.routing.min_tier)
        if self.routing.max_tier is not None:
            request.routing.max_tier = int(self.routing.max_tier)


def model_error(model: Any, catalog: Catalog) -> str | None:
    """What is wrong with the body's `model` (`auto`, or a catalog model), or None."""
    if not isinstance(model, str) or not model.strip():
        return "required; use 'auto' to let costmesh choose, or a model of GET /v1/models"
    if len(model) > MAX_MODEL_CHARS:
        return f"longer than {MAX_MODEL_CHARS} characters; see GET /v1/models"
    if model != AUTO_MODEL and model not in catalog.models:
        return f"{model!r} is not served here; see GET /v1/models"
    return None


def route_model(model: Any, catalog: Catalog, request: gw.CompleteRequest) -> str:
    """The body's `model`: `auto`, or a catalog model that pins the route."""
    problem = model_error(model, catalog)
    if problem:
        raise InvalidRequest(f"model: {problem}")
    if model != AUTO_MODEL:
        request.routing.model = model
    return model


def apply_options(raw: Any, request: gw.CompleteRequest) -> None:
    """The body's `costmesh` object onto the request (none: nothing to apply)."""
    if raw is None:
        return
    try:
        options = CostmeshOptions.model_validate(raw)
    except ValidationError as exc:
        raise invalid_request(exc, UNKNOWN_OPTION, ("costmesh",)) from None
    options.apply(request)


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

