"""Per-hop metrics from a service's own finished server spans (like the collector's
`spanmetrics` connector, but inside the service so Prometheus can scrape it directly).

Every costmesh hop already puts its facts on its span (latency, status, tier, cache hit and
similarity); this processor turns them into OpenTelemetry metrics: every hop's latency, the
cache's lookups by kind and hit similarity, the classifier's tiers. It only looks at SERVER
spans of the gRPC services it was given, so several services sharing one tracer provider (the
in-process test mesh) each count only their own calls. Spans dropped by a sampler are not
counted: sample at the collector (tail sampling), not in the services, if metrics must stay exact.

One instrument per fact: what a service counts itself is not counted here again. The router's
requests, upgrades and quality scores come from its own stats (`services/router/stats.py`), the
cache's entries, evictions, stores and refusals from its own metrics (`services/cache/metrics.py`).
Two instruments of one name with different labels make a scrape that OpenMetrics parsers reject.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

from costmesh.observability.metrics import LATENCY_BUCKETS_S, SCORE_BUCKETS

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class SpanMetricsProcessor(SpanProcessor):
    def __init__(self, meter: Meter, services: Iterable[str]):
        self._services = frozenset(services)
        self._active = True
        self._duration = meter.create_histogram(
            "costmesh.rpc.server.duration", unit="s", description="server-side latency of one hop",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self._lookups = meter.create_counter(
            "costmesh.cache.lookups", unit="{lookup}",
            description="cache lookups, by outcome (exact, semantic, miss, ...)"
        )
        self._similarity = meter.create_histogram(
            "costmesh.cache.hit.similarity", unit="1", description="similarity of the cached prompt a hit served",
            explicit_bucket_boundaries_advisory=SCORE_BUCKETS,
        )
        self._classified = meter.create_counter(
            "costmesh.classifier.requests", unit="{request}", description="classifications, by tier"
        )

    def close(self) -> None:
        """Stop counting (the service stopped; the tracer provider may live on)."""
        self._active = False

    def on_end(self, span: ReadableSpan) -> None:
        if not self._active or span.kind is not SpanKind.SERVER:
            return
        attrs = span.attributes or {}
        service = attrs.get("rpc.service")
        if service not in self._services:
            return
        method = str(attrs.get("rpc.method", ""))
        code = _CODE_NAMES.get(attrs.get("rpc.grpc.status_code", 0), "UNKNOWN")
        if span.end_time and span.start_time:
            self._duration.record(
                (span.end_time - span.start_time) / 1e9,
                {"rpc_service": service, "rpc_method": method, "grpc_code": code},
            )
        if code != "OK":
            return
        if method == "Classify" and "costmesh.complexity_score" in attrs:  # the classifier (not the gateway's span)
            self._classified.add(1, {"tier": str(attrs.get("costmesh.tier", "unknown"))})
        if method == "Lookup" and "costmesh.cache.hit_kind" in attrs:  # the cache
            self._lookups.add(1, {"kind": str(attrs["costmesh.cache.hit_kind"])})
            if attrs.get("costmesh.cache.hit"):
                self._similarity.record(float(attrs.get("costmesh.cache.similarity", 0.0)))

    def shutdown(self) -> None:
        self._active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
