"""Gives a failed call's server span its gRPC status.

The bootstrap's error interceptor aborts with `context.abort_with_status`, which the
OpenTelemetry interceptor's context wrapper does not see (it only wraps `abort`/`set_code`),
so without this the span of a failed hop would end with status UNSET and code 0. This
interceptor sits between the two: it runs inside the OpenTelemetry server span and, when the
call is aborted, copies the code onto that span (`rpc.grpc.status_code`, status ERROR).
"""

from __future__ import annotations

import inspect

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode


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


class SpanStatusInterceptor(grpc.aio.ServerInterceptor):
    """Place after the OpenTelemetry server interceptor and before the error interceptor."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
