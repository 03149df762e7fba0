"""The one bootstrap every costmesh service runs on.

A service is a `ServiceSpec`: its name, default port and a `mount` coroutine that builds its
dependencies from the `Runtime` and returns the servicers to add. The bootstrap adds the
standard health service (NOT_SERVING until mounted and during shutdown), reflection,
OpenTelemetry and error interceptors (health checks make no spans), structlog JSON logs (tenant
and request id bound per call), OpenTelemetry metrics (per-hop latency and the facts on each
hop's span, plus whatever the service records through `runtime.meter`) with a Prometheus endpoint on
`COSTMESH_METRICS_PORT`, SIGTERM -> drain -> stop, channels to peers that round-robin over
every replica (`Runtime.channel`) and a maximum connection age on the server (`server_options`).
Service credentials (`mesh_auth`): every channel to a peer sends a service token, and every
service but a public one (the gateway) refuses a call without a valid one (`UNAUTHENTICATED`).
A public service listens with TLS (`tls.EdgeTls`: COSTMESH_TLS, COSTMESH_TLS_CERT_FILE/KEY_FILE,
reloaded when the files change), plaintext only on loopback or with COSTMESH_TLS=off.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.observability.log_context import LogContextInterceptor, client_interceptors
from costmesh.observability.logs import configure_logging
from costmesh.observability.metrics import Metrics, build_metrics
from costmesh.observability.span_metrics import SpanMetricsProcessor
from costmesh.observability.span_status import SpanStatusInterceptor
from costmesh.observability.tracing import build_tracer_provider, traced_call
from costmesh.rpc.channels import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES, peer_channel  # noqa: F401 (re-exported)
from costmesh.rpc.interceptors import CallInterceptor
from costmesh.rpc.mesh_auth import MeshAuth
from costmesh.rpc.tls import EdgeTls
from costmesh.rpc.workers import Workers
from costmesh.server_settings import ServerSettings


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """`CHANNEL_OPTIONS` plus the maximum connection age and its grace (`max_connection_age_s`
    0 or less: connections never age out)."""
    options: list[tuple[str, int]] = list(CHANNEL_OPTIONS)
    if settings.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
        ]
    return options


@dataclass
class Servicer:
    """One gRPC service to add: the generated `add_XServicer_to_server`, the servicer, its full name."""

    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class Mounted:
    servicers: list[Servicer]
    close: Callable[[], Awaitable[None]] | None = None
    serving: bool = True  # False: the service flips health itself (e.g. a model still loading)


@dataclass
class Runtime:
    """What a service gets from the bootstrap: config, tracing, metrics, logs, channels, health."""

    service: str
    env: Env
    tracer_provider: TracerProvider
    log: Any
    metrics: Metrics | None = None
    mesh_auth: MeshAuth = field(default_factory=lambda: MeshAuth(None))
    edge_tls: EdgeTls | None = None  # a public service's TLS (its HTTP port uses it too)
    settings: ServerSettings = None  # type: ignore[assignment]  # read from `env` when not given
    _health: health.aio.HealthServicer | None = None
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _full_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = ServerSettings.load(self.env)

    def channel(self, address: str, *, own_connections: bool = False) -> grpc.aio.Channel:
        """A channel to another service, traced (W3C context in metadata). Closed on shutdown.

        Round-robin over every replica `address` resolves to (`peer_channel`): `dns:///cache:50052`.
        `own_connections`: connections of this channel's own, never shared with another channel to
        the same address (several such channels reach several workers of one replica).
        Each call carries a service token for the service it calls (`mesh_auth`).
        """
        channel = peer_channel(
            address,
            interceptors=[*aio_client_interceptors(tracer_provider=self.tracer_provider, filter_=traced_call),
                          *client_interceptors(), *self.mesh_auth.client_interceptors()],
            own_connections=own_connections,
        )
        self._channels.append(channel)
        return channel

    @property
    def meter(self) -> Meter:
        """The service's meter: instruments made here show on its Prometheus endpoint."""
        if self.metrics is None:
            self.metrics = build_metrics(self.service, self.settings, port=None)
        return self.metrics.meter()

    async def set_serving(self, serving: bool) -> None:
        if self._health is None:
            return
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._full_names]:
            await self._health.set(name, status)


@dataclass
class ServiceSpec:
    """`public`: callers outside the mesh call it (the gateway, which checks their API keys
    itself); every other service refuses a call without a service token."""

    name: str
    default_port: int
    mount: Callable[[Runtime], Awaitable[Mounted]]
    public: bool = False


@dataclass
class RunningService:
    spec: ServiceSpec
    server: grpc.aio.Server
    port: int
    runtime: Runtime
    mounted: Mounted
    span_metrics: SpanMetricsProcessor | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_port(self) -> int | None:
        """The Prometheus endpoint's port (`/metrics`), None when none runs."""
        return self.runtime.metrics.port if self.runtime.metrics is not None else None

    async def stop(self, grace_s: float = 5.0) -> None:
        """Drain: NOT_SERVING first, then let in-flight calls finish, then close what was opened."""
        await self.runtime.set_serving(False)
        await self.server.stop(grace_s)
        if self.mounted.close is not None:
            await self.mounted.close()
        for channel in self.runtime._channels:
            await channel.close()
        if self.span_metrics is not None:
            self.span_metrics.close()
        if self.runtime.metrics is not None:
            self.runtime.metrics.shutdown()


def cap_blas_threads(threads: int) -> None:
    """numpy's BLAS threads in this process (COSTMESH_BLAS_THREADS, default 1). OpenBLAS starts one
    thread per core and they spin after each call: in the classifier that tripled the CPU of a
    request (the nearest-neighbour products are small), and the mesh's processes share the cores."""
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


async def start_service(
    spec: ServiceSpec,
    env: Env | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    port: int | None = None,
    host: str | None = None,
    metrics_port: int | None = None,
) -> RunningService:
    """Start `spec` on `host:port` (port 0 picks a free one) and return once it listens.

    Metrics: with `meter_provider` given, instruments go there and no endpoint starts;
    otherwise the service gets its own provider, served for Prometheus on `metrics_port`
    (or `COSTMESH_METRICS_PORT`; 0 picks a free port; neither: no endpoint).
    """
    env = env or Env()
    settings = ServerSettings.load(env)  # fails at start on a bad setting
    cap_blas_threads(settings.blas_threads)
    tracer_provider = tracer_provider or build_tracer_provider(spec.name, settings)
    log = configure_logging(spec.name, settings.log_level)
    mesh_auth = MeshAuth.from_settings(settings, spec.name)  # fails at start without the mesh secret
    metrics = build_metrics(spec.name, settings, meter_provider=meter_provider, port=metrics_port)
    edge_tls = EdgeTls.from_env(env) if spec.public else None  # fails at start on a bad setting
    runtime = Runtime(spec.name, env, tracer_provider, log, metrics, mesh_auth, edge_tls, settings)
    host = host or settings.host
    try:
        credentials = edge_tls.grpc_credentials(host) if edge_tls is not None else None
    except BaseException:
        metrics.shutdown()
        raise

    interceptors = [
        aio_server_interceptor(tracer_provider=tracer_provider, filter_=traced_call),  # no health-check spans
        SpanStatusInterceptor(),
        LogContextInterceptor(trust_tenant_header=not spec.public),
        CallInterceptor(),
    ]
    token_check = None if spec.public else mesh_auth.server_interceptor()
    if token_check is not None:
        interceptors.append(token_check)  # innermost: CallInterceptor logs and maps its refusals
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    runtime._health = health_servicer

    try:
        mounted = await spec.mount(runtime)
    except BaseException:
        metrics.shutdown()
        raise
    for item in mounted.servicers:
        item.add(item.servicer, server)
    runtime._full_names = [item.full_name for item in mounted.servicers]
    span_metrics = SpanMetricsProcessor(runtime.meter, runtime._full_names)
    if hasattr(tracer_provider, "add_span_processor"):
        tracer_provider.add_span_processor(span_metrics)
    reflection.enable_server_reflection(
        [*runtime._full_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )

    port = (settings.port if settings.port is not None else spec.default_port) if port is None else port
    if credentials is not None:
        bound = server.add_secure_port(f"{host}:{port}", credentials)
    else:
        bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"{spec.name}: cannot listen on {host}:{port}")
    await server.start()
    await runtime.set_serving(mounted.serving)
    log.info("listening", address=f"{host}:{bound}", services=runtime._full_names, metrics_port=metrics.port,
             **({"tls": credentials is not None} if spec.public else {}))
    return RunningService(spec, server, bound, runtime, mounted, span_metrics)


def run(spec: ServiceSpec) -> None:
    """Entry point for `python -m costmesh.services.<name>`: serve until SIGTERM/SIGINT."""

    async def main() -> None:
        env = Env()
        settings = ServerSettings.load(env)
        workers = Workers(settings.workers) if settings.worker_index == 0 else Workers(1)
        if workers.count > 1 and settings.port == 0:
            raise ConfigError("COSTMESH_WORKERS > 1 needs a fixed COSTMESH_PORT (the workers share it)")
        service = await start_service(spec, env)
        workers.start(service.port)  # COSTMESH_WORKERS - 1 more processes on the same port
        supervise = asyncio.create_task(workers.supervise(service.port, service.runtime.log))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        service.runtime.log.info("shutting down")
        supervise.cancel()
        grace_s = settings.shutdown_grace_s
        await asyncio.gather(service.stop(grace_s), asyncio.to_thread(workers.stop, grace_s))
        service.runtime.tracer_provider.shutdown()

    asyncio.run(main())
