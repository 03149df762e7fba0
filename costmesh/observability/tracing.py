"""Tracer providers: OTLP export when an endpoint is configured, a file of JSON lines when one is
named (local runs without Jaeger), and no health-check spans in either.

`COSTMESH_TRACE_FILE`: every finished span appended to that file as one JSON object per line
(the OpenTelemetry SDK's own span JSON, `ReadableSpan.to_json`, compacted). Several processes may
share the file (`costmesh serve --trace-file` gives it to every service): each batch of lines is
one `write` on a file opened for appending, so lines never interleave.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.instrumentation.grpc import filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from costmesh.server_settings import ServerSettings


def traced_call(call_details) -> bool:
    """The gRPC instrumentation's filter: every call but the health checks (`grpc.health.v1.Health`),
    which probes, the launcher and load balancers make every few seconds."""
    return not filters.health_check()(call_details)


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span to `path` as one line of JSON."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                os.write(self._fd, data)
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def build_tracer_provider(service: str, settings: ServerSettings) -> TracerProvider:
    """One provider per process, named `costmesh-<service>`.

    Spans go to `OTEL_EXPORTER_OTLP_ENDPOINT` over OTLP/gRPC when it is set (Jaeger ingests it),
    and to `COSTMESH_TRACE_FILE` as JSON lines when that is set; with neither they are created
    (ids reach the logs) but not exported.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": f"costmesh-{service}"}))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace_file = settings.trace_file
    if trace_file:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(trace_file), schedule_delay_millis=1000))
    return provider
