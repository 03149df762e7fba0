"""The gateway's own settings: its peers, deadlines, store queue, HTTP port, API keys, records
and metrics. Its other concerns keep theirs beside their code: `validation.Limits` (request
bounds), `request_limits.LimitSettings` (tenant limits), `shadow.ShadowSettings` (checks of
cache hits), `feedback.FeedbackSettings`, `routing_quality.RoutingQualitySettings`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from costmesh.observability.gateway_metrics import DEFAULT_MAX_MODELS, DEFAULT_MAX_TENANTS
from costmesh.settings import Settings


class GatewayConfig(Settings):
    used_by: ClassVar[str] = "gateway"

    cache_addr: str | None = Field(None, description="the cache service (required; `dns:///name:port`: "
                                   "round-robin over every replica the name resolves to)")
    classifier_addr: str | None = Field(None, description="the classifier service (required)")
    router_addr: str | None = Field(None, description="the router service (required)")
    batches_addr: str | None = Field(None, description="the batches service (unset: batch calls answer "
                                     "`UNAVAILABLE`)")
    gateway_connections: int = Field(2, ge=1, description="connections to each peer, taken in turn, so calls "
                                     "reach every worker process of a replica")
    gateway_cache_timeout_s: float = Field(2.0, gt=0.0, description="deadline of the cache lookup; past it the "
                                           "request goes on uncached")
    gateway_classify_timeout_s: float = Field(1.0, gt=0.0, description="deadline of the classification; past "
                                              "it the request goes on the fallback tier")
    gateway_store_queue: int = Field(1024, ge=1, description="cache stores waiting after their answer was sent "
                                     "(a full queue drops and counts)")
    gateway_store_workers: int = Field(4, ge=1, description="tasks sending the queued stores")
    http_port: int = Field(8080, ge=0, le=65535, description="the OpenAI- and Anthropic-compatible HTTP API and "
                           "the dashboard (0: off)")
    http_host: str | None = Field(None, description="the HTTP API's address (default `COSTMESH_HOST`)")
    api_keys_file: str | None = Field(None, description="the API key file (required unless `COSTMESH_AUTH=off`; "
                                      "`costmesh serve --keys-file`: created when missing, kept across restarts)")
    records_dir: str | None = Field(None, description="keep one cost record per request there (unset: none); "
                                    "the dashboard's spend is read from it")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL", description="any Redis with the query "
                                  "engine (Redis 8, Redis Stack): the cache keeps its entries there and the batches "
                                  "service its jobs (both required); the gateway its tenant limits, feedback and "
                                  "routing checks (unset: limits not enforced)")
    log_content: bool = Field(False, description="`true` logs prompt and answer text")
    metrics_max_tenants: int = Field(DEFAULT_MAX_TENANTS, ge=1, description="tenant label values per replica on "
                                     "the metrics; later ones count as `other`")
    metrics_max_models: int = Field(DEFAULT_MAX_MODELS, ge=1, description="model label values per replica on "
                                    "the spend metrics; later ones count as `other`")
