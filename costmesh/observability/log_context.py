"""Tenant and request id on every log line of a call, in every service.

Server side: the tenant comes from the request message (`tenant_id`, `scope.tenant_id` or
`request.tenant_id`), the request id from the message's `request_id` or the `x-request-id`
metadata a costmesh client sent; a first hop (no `x-request-id`) whose request has an empty
`request_id` field assigns one (so the gateway's answer and its log lines carry the same id). The request id is
bound with structlog's contextvars for the duration of the call; the tenant is read from the
request message when each line is logged (`add_tenant`), so a tenant the gateway sets after
authenticating the caller is the one logged.
Client side: costmesh channels send the current request id on as `x-request-id`.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import grpc
import structlog

from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor

REQUEST_ID_HEADER = "x-request-id"
_REQUEST: ContextVar[object | None] = ContextVar("costmesh_request", default=None)


def _tenant_of(request) -> str:
    for path in (("tenant_id",), ("scope", "tenant_id"), ("request", "tenant_id")):
        value = request
        try:
            for name in path:
                value = getattr(value, name)
        except AttributeError:
            continue
        if isinstance(value, str) and value:
            return value
    return ""


def _request_id_of(request, context: grpc.aio.ServicerContext) -> str:
    inner = getattr(request, "request", None)  # StreamCompleteRequest wraps a CompleteRequest
    if inner is not None and hasattr(inner, "request_id"):
        request = inner
    own = getattr(request, "request_id", None)
    if isinstance(own, str) and own:
        return own
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and value:
            return value  # logged, never written into the message (e.g. vLLM ids must stay unique)
    if isinstance(own, str):  # a first hop: assign one
        request.request_id = uuid.uuid4().hex
        return request.request_id
    return ""


def add_tenant(_logger, _method, event: dict) -> dict:
    """structlog processor: the tenant of the call being served, if any."""
    request = _REQUEST.get()
    if request is not None and "tenant_id" not in event:
        tenant = _tenant_of(request)
        if tenant:
            event["tenant_id"] = tenant
    return event


def _bound(request, context: grpc.aio.ServicerContext) -> dict[str, str]:
    request_id = _request_id_of(request, context)
    return {"request_id": request_id} if request_id else {}


def _wrap_unary(behavior):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context)):
                return await behavior(request, context)
        finally:
            _REQUEST.reset(token)

    return handler


def _wrap_stream(behavior):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context)):
                async for item in behavior(request, context):
                    yield item
        finally:
            _REQUEST.reset(token)

    return handler


class LogContextInterceptor(HandlerWrappingInterceptor):
    def wrap_unary(self, method, behavior):
        return _wrap_unary(behavior)

    def wrap_stream(self, method, behavior):
        return _wrap_stream(behavior)


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if not request_id:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if REQUEST_ID_HEADER not in metadata:
        metadata.add(REQUEST_ID_HEADER, request_id)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class RequestIdUnaryClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_with_request_id(client_call_details), request)


class RequestIdStreamClientInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_with_request_id(client_call_details), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [RequestIdUnaryClientInterceptor(), RequestIdStreamClientInterceptor()]
