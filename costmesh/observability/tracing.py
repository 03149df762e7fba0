"""Tracer providers: OTLP export when an endpoint is configured."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from costmesh.config import Env


def build_tracer_provider(service: str, env: Env) -> TracerProvider:
    """One provider per process, named `costmesh-<service>`.

    Spans go to `OTEL_EXPORTER_OTLP_ENDPOINT` over OTLP/gRPC when it is set (Jaeger ingests it);
    otherwise they are created (ids reach the logs) but not exported.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": f"costmesh-{service}"}))
    if env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
