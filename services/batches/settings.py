"""The batches service's settings: its Redis, its peers, the poll interval and its deadlines."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from costmesh.settings import Settings

from .engine import BatchSettings

DEFAULT_RETENTION_S = 7 * 24 * 3600


class BatchesSettings(Settings):
    used_by: ClassVar[str] = "batches"

    redis_url: str | None = Field(None, validation_alias="REDIS_URL",
                                  description="the Redis the batches service keeps its jobs' state in (required)")
    cache_addr: str | None = Field(None, description="peer (required; `dns:///name:port`: round-robin over every "
                                   "replica the name resolves to)")
    classifier_addr: str | None = Field(None, description="peer (required; `dns:///name:port`: round-robin over "
                                        "every replica the name resolves to)")
    router_addr: str | None = Field(None, description="peer (required; `dns:///name:port`: round-robin over every "
                                    "replica the name resolves to)")
    providers_addr: str | None = Field(None, description="peer: the providers service (required)")
    batch_poll_s: float = Field(30.0, gt=0.0, description="how often the providers are polled for the batches' "
                                "progress")
    batch_cache_timeout_s: float = Field(2.0, gt=0.0, description="deadline of a batch item's cache lookup")
    batch_classify_timeout_s: float = Field(1.0, gt=0.0, description="deadline of a batch item's classification")
    batch_provider_timeout_s: float = Field(300.0, gt=0.0, description="deadline of the batches service's calls "
                                            "to the providers service (a submission uploads the whole batch)")
    batch_retention_s: int = Field(DEFAULT_RETENTION_S, gt=0, description="how long an ended batch job is kept "
                                   "(7 days)")

    def engine_settings(self) -> BatchSettings:
        return BatchSettings(poll_interval_s=self.batch_poll_s, cache_timeout_s=self.batch_cache_timeout_s,
                             classify_timeout_s=self.batch_classify_timeout_s)
