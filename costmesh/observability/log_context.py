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
directly with one still answers, without passing it on. The tenant goes along as `x-tenant-id`,
so a service whose request names none (the classifier) logs it too; only the mesh's own
services read it (`trust_tenant_header`), never the public gateway, whose tenant is the API key's.
Work done later for a request (the gateway's queued cache stores) carries its fields along
(`request_fields`, `bound_request`); the HTTP API binds them per request (`request_scope`).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token

import grpc
import structlog

from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor

REQUEST_ID_HEADER = "x-request-id"
TENANT_HEADER = "x-tenant-id"
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,256}")  # printable ASCII: what gRPC takes as a metadata value
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


def _bound(request, context: grpc.aio.ServicerContext, trust_tenant_header: bool) -> dict[str, str]:
    request_id = _request_id_of(request, context)
    bound = {"request_id": request_id} if request_id else {}
    if trust_tenant_header and not _tenant_of(request):
        for key, value in context.invocation_metadata() or ():
            if key == TENANT_HEADER and isinstance(value, str) and _HEADER_VALUE.fullmatch(value):
                bound["tenant_id"] = value
    return bound


def request_fields() -> dict[str, str]:
    """The request id and tenant of the request being served (those bound, or the served call's
    message's tenant): what its log lines carry, to carry into work done for it elsewhere."""
    bound = structlog.contextvars.get_contextvars()
    fields = {name: bound[name] for name in ("request_id", "tenant_id") if isinstance(bound.get(name), str)
              and bound[name]}
    if "tenant_id" not in fields:
        request = _REQUEST.get()
        tenant = _tenant_of(request) if request is not None else ""
        if tenant:
            fields["tenant_id"] = tenant
    return fields


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """What is bound inside (`bind_request`) is unbound after: an HTTP connection kept alive
    serves request after request in one task, and none may log another's ids."""
    saved = structlog.contextvars.get_contextvars()
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved)


def bind_request(*, request_id: str = "", tenant_id: str = "") -> None:
    """Every log line from here on (within the `request_scope`, or the task) carries these."""
    fields = {"request_id": request_id, "tenant_id": tenant_id}
    structlog.contextvars.bind_contextvars(**{name: value for name, value in fields.items() if value})


def bound_request(fields: dict[str, str]) -> contextlib.AbstractContextManager:
    """`request_fields()` taken earlier, bound again around work done later for that request."""
    return structlog.contextvars.bound_contextvars(**fields)


def _reset(token: Token) -> None:
    try:
        _REQUEST.reset(token)
    except ValueError:
        # A stream its client cancelled is closed later, by the event loop, in another
        # context: the one the token belongs to is gone with the call, nothing to restore.
        pass


def _wrap_unary(behavior, trust_tenant_header: bool):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context, trust_tenant_header)):
                return await behavior(request, context)
        finally:
            _reset(token)

    return handler


def _wrap_stream(behavior, trust_tenant_header: bool):
    async def handler(request, context):
        token = _REQUEST.set(request)
        try:
            with structlog.contextvars.bound_contextvars(**_bound(request, context, trust_tenant_header)):
                async for item in behavior(request, context):
                    yield item
        finally:
            _reset(token)

    return handler


class LogContextInterceptor(HandlerWrappingInterceptor):
    """`trust_tenant_header`: log the `x-tenant-id` a caller sent when the request names no tenant
    (the mesh's own services, whose callers hold a service token; never the public gateway)."""

    def __init__(self, trust_tenant_header: bool = False):
        self.trust_tenant_header = trust_tenant_header

    def wrap_unary(self, method, behavior):
        return _wrap_unary(behavior, self.trust_tenant_header)

    def wrap_stream(self, method, behavior):
        return _wrap_stream(behavior, self.trust_tenant_header)


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    fields = request_fields()
    request_id, tenant = fields.get("request_id", ""), fields.get("tenant_id", "")
    headers = {}
    if is_valid_request_id(request_id):
        headers[REQUEST_ID_HEADER] = request_id
    if _HEADER_VALUE.fullmatch(tenant):
        headers[TENANT_HEADER] = tenant
    if not headers:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in headers.items():
        if key not in metadata:
            metadata.add(key, value)
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
