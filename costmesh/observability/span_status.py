"""Gives a failed call's server span its gRPC status.

The bootstrap's error interceptor aborts with `context.abort_with_status`, which the
OpenTelemetry interceptor's context wrapper does not see (it only wraps `abort`/`set_code`),
so without this the span of a failed hop would end with status UNSET and code 0. This
interceptor sits between the two: it runs inside the OpenTelemetry server span and, when the
call is aborted, copies the code onto that span (`rpc.grpc.status_code`, status ERROR).
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor


def mark_span(context: grpc.aio.ServicerContext) -> None:
    code = context.code()
    if not isinstance(code, grpc.StatusCode) or code == grpc.StatusCode.OK:
        return
    span = trace.get_current_span()
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    details = context.details()
    if isinstance(details, bytes):
        details = details.decode(errors="replace")
    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}" if details else code.name))


def _wrap_unary(behavior):
    async def handler(request, context):
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            mark_span(context)
            raise

    return handler


def _wrap_stream(behavior):
    async def handler(request, context):
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            mark_span(context)
            raise

    return handler


class SpanStatusInterceptor(HandlerWrappingInterceptor):
    """Place after the OpenTelemetry server interceptor and before the error interceptor."""
    def wrap_unary(self, method, behavior):
        return _wrap_unary(behavior)

    def wrap_stream(self, method, behavior):
        return _wrap_stream(behavior)
