"""The router service's settings (`COSTMESH_ROUTER_*`): its peer, retries and quality gate."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from costmesh.settings import Lowercase, Settings

from .retry import RetryPolicy


class RouterSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="COSTMESH_ROUTER_")
    used_by: ClassVar[str] = "router"

    providers_addr: str | None = Field(None, validation_alias="COSTMESH_PROVIDERS_ADDR",
                                       description="peer: the providers service (required)")
    max_retries: int = Field(2, ge=0, description="retries of a model after a 429")
    transient_retries: int = Field(1, ge=0, description="retries of a model after a 5xx or when it is unreachable")
    backoff_base_s: float = Field(0.2, ge=0.0, description="the first retry's backoff (full-jitter exponential)")
    backoff_max_s: float = Field(5.0, ge=0.0, description="the longest backoff; a retry-after longer than this is "
                                 "not waited for, the cascade moves on to the next model")
    max_rate_limited: int = Field(4, ge=0, description="429s one request may meet before it answers "
                                  "`RESOURCE_EXHAUSTED`")
    rate_limit_wait_s: float = Field(4.0, ge=0.0, description="one request's waits after 429s, in all, before it "
                                     "answers `RESOURCE_EXHAUSTED`")
    gate: Literal["learned", "heuristic"] | None = Field(
        None, description="the cascade's quality gate: `learned` (the heuristics plus the router artifact's answer "
        "gate) or `heuristic` (the heuristics alone); default `learned` when the router artifact is there")
    gate_threshold: float = Field(0.5, ge=0.0, le=1.0, description="the heuristic gate's threshold")
    artifact: str | None = Field(None, description="the trained router (default: the packaged "
                                 "`costmesh/routing/artifacts/router-v1.npz`)")
    gate_max_tier: Annotated[Literal["trivial", "simple", "moderate", "complex"], Lowercase] = Field(
        "simple", description="the highest tier whose answers the learned gate judges")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_retries,
            transient_retries=self.transient_retries,
            base_delay_s=self.backoff_base_s,
            max_delay_s=self.backoff_max_s,
            max_rate_limited=self.max_rate_limited,
            rate_limit_wait_s=self.rate_limit_wait_s,
        )
