"""The classifier service's settings (`COSTMESH_CLASSIFIER_*`, and the router artifact it reads)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from costmesh.settings import Settings


class ClassifierSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="COSTMESH_CLASSIFIER_")
    used_by: ClassVar[str] = "classifier"

    strategy: Literal["learned", "rules"] | None = Field(
        None, description="the classifier's default strategy: `learned` (the router artifact's) or `rules`; "
        "default `learned` when the router artifact loads, else `rules`")
    artifact: str | None = Field(None, validation_alias="COSTMESH_ROUTER_ARTIFACT",
                                 description="the trained router (default: the packaged "
                                 "`costmesh/routing/artifacts/router-v1.npz`; the classifier reads it again when "
                                 "the file changes)")
    artifact_check_s: float = Field(2.0, ge=0.0, validation_alias="COSTMESH_ROUTER_ARTIFACT_CHECK_S",
                                    description="how often the classifier checks the router artifact file for a "
                                    "change (0: on every call)")
    preload_embedder: bool | None = Field(
        None, description="load the embedding model in the background at start, for requests without the "
        "cache's embedding (until it is loaded they are answered by `rules`); default: true when `learned` is "
        "the default strategy")
    max_inflight: int = Field(64, ge=1, description="admission control: classifications in flight at once; the "
                              "next one, or one that recent latency says would finish after its caller's deadline, "
                              "is refused at once as busy (`RESOURCE_EXHAUSTED`, `OVERLOADED`)")
