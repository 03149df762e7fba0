"""The one table between costmesh errors and gRPC status codes, both directions."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from costmesh import errors

DOMAIN = "costmesh"
OVERLOADED = "OVERLOADED"  # google.rpc.ErrorInfo reason of errors.Overloaded (RESOURCE_EXHAUSTED)
# google.rpc.ErrorInfo reason of errors.ServiceUnauthenticated (UNAUTHENTICATED): a mesh peer refused
# the caller's service token, which its caller reads as this mesh's fault (Unavailable), not its own key's.
SERVICE_TOKEN = "SERVICE_TOKEN"

# Domain error -> gRPC status code. Order matters: first match wins (subclasses first).
ERROR_TABLE: tuple[tuple[type[errors.CostmeshError], grpc.StatusCode], ...] = (
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UpstreamTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UpstreamError, grpc.StatusCode.UNAVAILABLE),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)

# gRPC status code -> domain error, for clients of other costmesh services.
CODE_TABLE: dict[grpc.StatusCode, type[errors.CostmeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidRequest,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.RateLimited,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.UpstreamTimeout,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: errors.ConfigError,
}


def code_for(exc: BaseException) -> grpc.StatusCode:
    for error_type, code in ERROR_TABLE:
        if isinstance(exc, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(exc: BaseException) -> grpc.Status:
    """A rich status for `context.abort_with_status`: RetryInfo for rate limits, ErrorInfo for
    a saturated service, BadRequest naming the field of an invalid request."""
    code = code_for(exc)
    message = str(exc) if isinstance(exc, errors.CostmeshError) else "internal error"
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if isinstance(exc, errors.InvalidRequest):
        violation = field_violation(message)
        if violation is not None:
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    if isinstance(exc, errors.Overloaded):  # tells a saturated service from an upstream's 429
        status.details.add().Pack(error_details_pb2.ErrorInfo(reason=OVERLOADED, domain=DOMAIN))
    if isinstance(exc, errors.ServiceUnauthenticated):
        status.details.add().Pack(error_details_pb2.ErrorInfo(reason=SERVICE_TOKEN, domain=DOMAIN))
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        detail = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(retry_after), nanos=int((retry_after % 1) * 1e9))
        )
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def field_violation(message: str) -> error_details_pb2.BadRequest.FieldViolation | None:
    """The field an InvalidRequest names ("field: what is wrong", e.g. "messages[0].role: unknown
    role 7"): the part before the first ":" and the rest. None when the message names no field
    (no ":", or text with spaces before it)."""
    field, colon, description = message.partition(":")
    if not colon or not field or any(c.isspace() for c in field):
        return None
    return error_details_pb2.BadRequest.FieldViolation(field=field, description=description.strip())


async def call_unary(method, request, timeout: float | None):
    """`method(request)` on another costmesh service; its failure raised as the domain error."""
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None


def from_rpc_error(exc: grpc.aio.AioRpcError) -> errors.CostmeshError:
    """The domain error a failed call to another costmesh service stands for."""
    error_type = CODE_TABLE.get(exc.code(), errors.UpstreamError)
    message = exc.details() or exc.code().name
    if error_type is errors.Unauthenticated and _reason(exc) == SERVICE_TOKEN:
        return errors.Unavailable(f"a mesh peer refused this service's credentials: {message}")
    if error_type is errors.RateLimited:
        if _reason(exc) == OVERLOADED:
            return errors.Overloaded(message, _retry_after(exc))
        return errors.RateLimited(message, _retry_after(exc))
    return error_type(message)


def _details(exc: grpc.aio.AioRpcError) -> list:
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


def _reason(exc: grpc.aio.AioRpcError) -> str:
    for detail in _details(exc):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == DOMAIN:
                return info.reason
    return ""


def _retry_after(exc: grpc.aio.AioRpcError) -> float | None:
    for detail in _details(exc):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None
