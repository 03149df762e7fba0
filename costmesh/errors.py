"""The one error hierarchy of costmesh. `costmesh.rpc.status` maps it to gRPC status codes."""

from __future__ import annotations


class CostmeshError(Exception):
    """Base of every error costmesh raises on purpose."""


class ConfigError(CostmeshError):
    """Configuration is missing or wrong: raised at start, before serving."""


class InvalidRequest(CostmeshError):
    """The caller sent something we will not process. The message names the field."""


class Unauthenticated(CostmeshError):
    """No valid credentials."""


class ServiceUnauthenticated(Unauthenticated):
    """A call inside the mesh without a valid service token: none, forged, expired, or issued for
    another service (`costmesh.rpc.mesh_auth`)."""


class PermissionDenied(CostmeshError):
    """Valid credentials that do not allow this call, e.g. a request naming another tenant than
    the one its service token was issued for."""


class NotFound(CostmeshError):
    """A named thing (model, batch, entry) does not exist."""


class RateLimited(CostmeshError):
    """An upstream said 429. `retry_after_s` is its hint, if it gave one."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LimitExceeded(RateLimited):
    """A tenant or an API key is over one of its limits (requests or tokens per minute, USD per
    day or month); `retry_after_s` says when it will not be."""


class Overloaded(RateLimited):
    """A service is saturated and refused the call at once instead of queueing it past its
    caller's deadline. Callers go on without it (a cache lookup becomes a miss) or retry shortly."""

    def __init__(self, message: str, retry_after_s: float | None = 0.05):
        super().__init__(message, retry_after_s)


class UpstreamError(CostmeshError):
    """An upstream (provider, service) failed in a way worth retrying elsewhere."""


class UpstreamTimeout(CostmeshError):
    """An upstream did not answer before its deadline."""


class Unavailable(CostmeshError):
    """A dependency (Redis, a service) cannot be reached right now."""
