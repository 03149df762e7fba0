"""costmesh errors -> HTTP statuses and error bodies, OpenAI's or Anthropic's: the HTTP twin of
the gRPC table, one row per domain error for both APIs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costmesh import errors
from costmesh.gateway.http.openai_format import param_of


@dataclass(frozen=True)
class Row:
    error: type[errors.CostmeshError]
    status: int
    openai_type: str
    openai_code: str | None
    anthropic_type: str
    anthropic_status: int | None = None  # when Anthropic's status differs


# Domain error -> statuses and types. First match wins (subclasses first).
HTTP_TABLE: tuple[Row, ...] = (
    Row(errors.InvalidRequest, 400, "invalid_request_error", None, "invalid_request_error"),
    Row(errors.Unauthenticated, 401, "invalid_request_error", "invalid_api_key", "authentication_error"),
    Row(errors.PermissionDenied, 403, "invalid_request_error", "permission_denied", "permission_error"),
    Row(errors.NotFound, 404, "invalid_request_error", "not_found", "not_found_error"),
    Row(errors.Overloaded, 429, "rate_limit_error", "rate_limit_exceeded", "overloaded_error", 529),
    Row(errors.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error"),
    Row(errors.UpstreamTimeout, 504, "timeout_error", "upstream_timeout", "timeout_error"),
    Row(errors.UpstreamError, 502, "api_error", "upstream_error", "api_error"),
    Row(errors.Unavailable, 503, "api_error", "service_unavailable", "overloaded_error"),
    Row(errors.ConfigError, 500, "server_error", "configuration_error", "api_error"),
)
# aiohttp's own refusals (no route, wrong method, body too large) -> Anthropic's error type.
ANTHROPIC_HTTP_TYPES = {404: "not_found_error", 413: "request_too_large"}


def _row(exc: BaseException) -> Row | None:
    return next((row for row in HTTP_TABLE if isinstance(exc, row.error)), None)


def _retry_headers(exc: BaseException) -> dict[str, str]:
    retry_after = getattr(exc, "retry_after_s", None)
    return {} if retry_after is None else {"retry-after": str(max(1, math.ceil(retry_after)))}


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def http_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, OpenAI error body, headers) for an exception raised while answering."""
    row = _row(exc)
    if row is None:
        return 500, error_body("internal error", "server_error", None, "internal_error"), {}
    message = str(exc)
    code = row.openai_code
    param = param_of(message) if isinstance(exc, errors.InvalidRequest) else None
    if isinstance(exc, errors.InvalidRequest) and message.startswith("model: "):
        code = "model_not_found"
    return row.status, error_body(message, row.openai_type, param, code), _retry_headers(exc)


def anthropic_error_body(message: str, type_: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def anthropic_error(exc: BaseException, rename: Callable[[str], str] | None = None,
                    ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, Anthropic error body, headers). `rename` names the Anthropic parameter in the
    message of an `InvalidRequest` the pipeline raised (its fields are the proto's)."""
    row = _row(exc)
    if row is None:
        return 500, anthropic_error_body("internal error", "api_error"), {}
    message = str(exc)
    if isinstance(exc, errors.InvalidRequest) and rename is not None:
        message = rename(message)
    status = row.anthropic_status or row.status
    return status, anthropic_error_body(message, row.anthropic_type), _retry_headers(exc)
