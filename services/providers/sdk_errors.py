"""Exceptions of the official SDKs (anthropic, openai) -> costmesh domain errors.

Both SDKs share one shape (APIStatusError with `status_code` and `response`,
APIConnectionError, APITimeoutError), so one function maps both; the SDK module is passed in.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from types import ModuleType

from costmesh import errors

RETRYABLE_STATUS = frozenset({408, 409, 500, 502, 503, 504, 529})


def map_sdk_error(exc: BaseException, sdk: ModuleType, provider: str, model: str) -> errors.CostmeshError:
    """The domain error for an exception the SDK raised."""
    where = f"{provider} ({model})"
    if isinstance(exc, sdk.APITimeoutError):
        return errors.UpstreamTimeout(f"{where}: request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return errors.UpstreamError(f"{where}: connection failed: {exc}")
    if isinstance(exc, sdk.APIStatusError):
        return _from_status(exc.status_code, _detail(exc), exc.response.headers, where)
    if isinstance(exc, sdk.APIResponseValidationError):
        return errors.UpstreamError(f"{where}: malformed response: {exc}")
    return errors.UpstreamError(f"{where}: {exc}")


def _from_status(status: int, detail: str, headers: Mapping[str, str], where: str) -> errors.CostmeshError:
    if status == 429:
        return errors.RateLimited(f"{where}: rate limited: {detail}", retry_after_seconds(headers))
    if status in (401, 403):
        return errors.ConfigError(
            f"{where}: provider rejected the API key (HTTP {status}): {detail}; check the provider's API key"
        )
    if status == 404:
        return errors.NotFound(f"{where}: not found upstream: {detail}")
    if status in (400, 413, 422):
        return errors.InvalidRequest(f"{where}: provider rejected the request (HTTP {status}): {detail}")
    if status in RETRYABLE_STATUS or status >= 500:
        return errors.UpstreamError(f"{where}: upstream error (HTTP {status}): {detail}")
    return errors.UpstreamError(f"{where}: unexpected HTTP {status}: {detail}")


def _detail(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return getattr(exc, "message", None) or str(exc)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a 429 asks for: `retry-after-ms`, `retry-after` seconds, or an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
