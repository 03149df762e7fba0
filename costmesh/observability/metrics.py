"""OpenTelemetry metrics per service, exposed for Prometheus on `COSTMESH_METRICS_PORT`.

Each service gets its own `MeterProvider` and its own `prometheus_client` registry (never the
global one), so several services can run in one process (the in-process test mesh) and each
endpoint shows only its own service's metrics. Port 0 picks a free port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

from costmesh.server_settings import ServerSettings

METER_NAME = "costmesh"

# Histogram bucket boundaries (advisory, per instrument).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
COST_BUCKETS_USD = (1e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 1.0)


@dataclass
class Metrics:
    """A service's meter provider and, when one was asked for, its Prometheus endpoint."""

    meter_provider: MeterProvider
    registry: CollectorRegistry | None = None
    port: int | None = None  # the bound metrics port, None when no endpoint runs
    owned: bool = True  # built here: shut down with the service
    _server: object | None = None
    _thread: threading.Thread | None = None
    _closed: bool = field(default=False, repr=False)

    def meter(self, name: str = METER_NAME) -> Meter:
        return self.meter_provider.get_meter(name)

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.owned:
            self.meter_provider.shutdown()


def build_metrics(
    service: str,
    settings: ServerSettings,
    *,
    meter_provider: MeterProvider | None = None,
    port: int | None = None,
    host: str | None = None,
) -> Metrics:
    """A meter provider for `service`, with a Prometheus endpoint on `port` (or the env's).

    With `meter_provider` given (tests, embedding apps) that provider is used as it is, no
    endpoint starts, and it is not shut down with the service.
    """
    if meter_provider is not None:
        return Metrics(meter_provider, owned=False)
    port = settings.metrics_port if port is None else port
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry, disable_target_info=True, scope_info_enabled=False)
    provider = MeterProvider(resource=Resource.create({"service.name": f"costmesh-{service}"}), metric_readers=[reader])
    metrics = Metrics(provider, registry)
    if port is not None:
        host = host or settings.metrics_host or settings.host
        server, thread = start_http_server(port, addr=host, registry=registry)
        metrics._server, metrics._thread = server, thread
        metrics.port = server.server_port
    return metrics
