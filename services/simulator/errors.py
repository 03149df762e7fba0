"""API errors and how each provider writes them (status, body, headers)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from aiohttp import web

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
    504: "server_error",
    529: "server_error",
}


class ApiError(Exception):
    """An error answer. `code`/`param` show in OpenAI bodies; the message in both."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def anthropic_response(error: ApiError) -> web.Response:
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    body = {
        "type": "error",
        "error": {"type": ANTHROPIC_TYPES.get(error.status, "api_error"), "message": error.message},
        "request_id": request_id,
    }
    return _json(error, body, {"request-id": request_id})


def openai_response(error: ApiError) -> web.Response:
    body = {
        "error": {
            "message": error.message,
            "type": OPENAI_TYPES.get(error.status, "server_error"),
            "param": error.param,
            "code": error.code,
        }
    }
    return _json(error, body, {"x-request-id": f"req_{uuid.uuid4().hex}"})


def _json(error: ApiError, body: dict, extra: dict[str, str]) -> web.Response:
    return web.Response(
        status=error.status,
        text=json.dumps(body),
        content_type="application/json",
        headers={**extra, **error.headers},
    )
