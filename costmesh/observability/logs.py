"""structlog JSON lines carrying the current trace and span ids, the tenant and the request id."""

from __future__ import annotations

import logging
import sys

import structlog
from opentelemetry import trace

from costmesh.observability.log_context import add_tenant


def _add_trace_ids(_logger, _method, event: dict) -> dict:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
    return event


class _ClosedInAnotherContext(logging.Filter):
    """Drops OpenTelemetry's "Failed to detach context" traceback for a span closed in another
    context than the one it was opened in. That happens, harmlessly, when a client cancels a
    stream: grpc leaves the call's generators suspended and the event loop closes them later in
    a task of its own. The call's `rpc` line (code CANCELLED) is the one line logged for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ValueError) and "was created in a different Context" in str(exc))


def _quiet_cancelled_streams() -> None:
    otel = logging.getLogger("opentelemetry.context")
    if not any(isinstance(f, _ClosedInAnotherContext) for f in otel.filters):
        otel.addFilter(_ClosedInAnotherContext())


def configure_logging(service: str, level: str = "info") -> structlog.stdlib.BoundLogger:
    """JSON logs on stderr. Called once per process by the bootstrap."""
    _quiet_cancelled_streams()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_tenant,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_ids,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger(service=service)
