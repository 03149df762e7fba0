"""costmesh errors -> OpenAI-style error bodies and HTTP statuses: the HTTP twin of the gRPC table."""

from __future__ import annotations

import math
from typing import Any

from costmesh import errors
from costmesh.gateway.http.openai_format import param_of

# Domain error -> (HTTP status, OpenAI error type, code). First match wins (subclasses first).
HTTP_TABLE: tuple[tuple[type[errors.CostmeshError], int, str, str | None], ...] = (
    (errors.InvalidRequest, 400, "invalid_request_error", None),
    (errors.Unauthenticated, 401, "invalid_request_error", "invalid_api_key"),
    (errors.NotFound, 404, "invalid_request_error", "not_found"),
    (errors.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
    (errors.UpstreamTimeout, 504, "timeout_error", "upstream_timeout"),
    (errors.UpstreamError, 502, "api_error", "upstream_error"),
    (errors.Unavailable, 503, "api_error", "service_unavailable"),
    (errors.ConfigError, 500, "server_error", "configuration_error"),
)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def http_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for an exception raised while answering."""
    for error_type, status, type_, code in HTTP_TABLE:
        if isinstance(exc, error_type):
            message = str(exc)
            param = param_of(message) if isinstance(exc, errors.InvalidRequest) else None
            if isinstance(exc, errors.InvalidRequest) and message.startswith("model: "):
                code = "model_not_found"
            headers = {}
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after is not None:
                headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            return status, error_body(message, type_, param, code), headers
    return 500, error_body("internal error", "server_error", None, "internal_error"), {}
