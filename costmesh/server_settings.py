"""The settings of the bootstrap every service runs on (`server.start_service`): where it listens,
its workers, logs, traces, metrics, connection ages and the mesh's service credentials."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from costmesh.settings import Lowercase, Settings

# Servers close each connection after this age (+-10% jitter, gRPC's own), letting calls in
# flight finish within the grace: clients then reconnect and re-resolve their `dns:///` target,
# so replicas added since (an HPA scaling out) get their share of calls. The grace covers the
# longest call (a provider call times out at 120 s, and the router's cascade can make several).
DEFAULT_MAX_CONNECTION_AGE_S = 300.0
DEFAULT_MAX_CONNECTION_AGE_GRACE_S = 300.0
DEFAULT_MESH_TOKEN_TTL_S = 60.0


class ServerSettings(Settings):
    used_by: ClassVar[str] = "all"

    host: str = Field("127.0.0.1", min_length=1, description="listen address")
    port: int | None = Field(None, ge=0, le=65535, description="listen port (default: the service's own, "
                             "50051-50057; 0: a free one)")
    workers: int = Field(1, ge=1, description="worker processes of the service on its one port (SO_REUSEPORT); "
                         "the first restarts a worker that dies. Each loads its own models: on a 2-core machine "
                         "one per service is fastest (launcher: `COSTMESH_<SERVICE>_WORKERS`)")
    worker_index: int = Field(0, ge=0, description="set by the first worker for the ones it starts (not by hand)")
    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], Lowercase] = Field(
        "info", description="log level")
    blas_threads: int = Field(1, ge=0, description="numpy's BLAS threads per process (0: OpenBLAS's own "
                              "default, one per core, whose threads spin after each call)")
    max_connection_age_s: float = Field(
        DEFAULT_MAX_CONNECTION_AGE_S, description="a server closes each connection after this age (0 or less: "
        "never), so that clients re-resolve and new replicas get calls")
    max_connection_age_grace_s: float = Field(DEFAULT_MAX_CONNECTION_AGE_GRACE_S, ge=0.0,
                                              description="calls in flight on an aged connection finish within this")
    shutdown_grace_s: float = Field(5.0, ge=0.0, description="on SIGTERM, calls in flight finish within this")
    catalog: str | None = Field(None, description="the model catalog file (default: the packaged one)")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus `/metrics` endpoint (unset: "
                                     "none; 0: a free port; the launcher and `costmesh serve` give each service "
                                     "a free port of its own)")
    metrics_host: str | None = Field(None, description="the metrics endpoint's address (default `COSTMESH_HOST`)")
    trace_file: str | None = Field(None, description="also append every span to this file, one JSON object per "
                                   "line (the OpenTelemetry SDK's span JSON); processes may share it")
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
                                      description="export spans over OTLP/gRPC (Jaeger: `http://jaeger:4317`)")
    auth: Annotated[Literal["on", "off"], Lowercase] = Field(
        "on", description="API keys at the gateway: `off` only for development (every caller is the default "
        "tenant); also the default of `COSTMESH_MESH_AUTH`")
    mesh_auth: Annotated[Literal["on", "off"] | None, Lowercase] = Field(
        None, description="service tokens checked and sent between the services: `on` (default) or `off` (only "
        "for development; the default where `COSTMESH_AUTH=off`)")
    mesh_secret_file: str | None = Field(None, description="the mesh secret the services sign their calls to "
                                         "each other with (required; `costmesh mesh-secret FILE` makes one; the "
                                         "launcher makes one in its run directory)")
    mesh_token_ttl_s: float = Field(DEFAULT_MESH_TOKEN_TTL_S, gt=0.0,
                                    description="lifetime of a service token (reused for half of it)")

    @property
    def mesh_auth_on(self) -> bool:
        return (self.mesh_auth or self.auth) == "on"
