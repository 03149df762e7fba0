"""Tenant and request id on every log line of a call, in every service.

Server side: the tenant comes from the request message (`tenant_id`, `scope.tenant_id` or
`request.tenant_id`), the request id from the message's `request_id` or the `x-request-id`
metadata a costmesh client sent; a first hop (no `x-request-id`) whose request has an empty
`request_id` field assigns one (so the gateway's answer and its log lines carry the same id). The request id is
bound with structlog's contextvars for the duration of the call; the tenant is read from the
request message when each line is logged (`add_tenant`), so a tenant the gateway sets after
authenticating the caller is the one logged.
Client side: costmesh channels send the current request id on as `x-request-id`, when it is a
valid header value (`REQUEST_ID_CHARS`, at most `MAX_REQUEST_ID_CHARS`): a value gRPC refuses
as metadata would fail the downstream call, and grpc.aio would leave that call hanging. The
gateway refuses such a `request_id` at the edge (`INVALID_ARGUMENT`); a service called
directly with one still answers, without passing it on.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

import grpc
import structlog

from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_CHARS = re.compile(r"[A-Za-z0-9._:-]+")  # printable ASCII: always a valid header value
MAX_REQUEST_ID_CHARS = 128
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


def is_valid_request_id(value: str) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID_CHARS and REQUEST_ID_CHARS.fullmatch(value) is not None


def _request_id_of(request, context: grpc.aio.ServicerContext) -> str:
    inner = getattr(request, "request", None)  # StreamCompleteRequest wraps a CompleteRequest
    if inner is not None and hasattr(inner, "request_id"):
        request = inner
    own = getattr(request, "request_id", None)
    if isinstance(own, str) and own:
        return own if is_valid_request_id(own) else ""  # refused by validation; never logged nor passed on
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and is_valid_request_id(value):
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


def _reset(token: Token) -> None:
    try:
        _REQUEST.reset(token)
    except ValueError:
        # A stream its client cancelled is closed later, by the event loop, in another
        # context: the one the token belongs to is gone with the call, nothing to restore.
        pass


def _wrap_unary(behavior):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context)):
                return await behavior(request, context)
        finally:
            _reset(token)

    return handler


def _wrap_stream(behavior):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context)):
                async for item in behavior(request, context):
                    yield item
        finally:
            _reset(token)

    return handler


class LogContextInterceptor(HandlerWrappingInterceptor):
    def wrap_unary(self, method, behavior):
        return _wrap_unary(behavior)

    def wrap_stream(self, method, behavior):
        return _wrap_stream(behavior)


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if not isinstance(request_id, str) or not is_valid_request_id(request_id):
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
