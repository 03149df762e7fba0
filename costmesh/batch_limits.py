"""The providers' documented batch limits, enforced before anything is sent (InvalidRequest).

The providers service checks each provider payload (its exact size); the batches service and the
gateway count requests first, so an oversized batch is refused before any lookup or upload."""

from __future__ import annotations

from dataclasses import dataclass

from costmesh.errors import InvalidRequest

MB = 1024 * 1024


@dataclass(frozen=True)
class BatchLimits:
    """Per provider batch: Anthropic 100,000 requests or 256 MB; OpenAI 50,000 requests, 200 MB per file.

    Both end a batch within 24 hours (OpenAI's only `completion_window` is "24h"); requests not
    answered by then come back expired.
    """

    max_requests: int
    max_bytes: int
    what: str  # how the provider names the payload, for the error message


LIMITS = {
    "anthropic": BatchLimits(100_000, 256 * MB, "Message Batch"),
    "openai": BatchLimits(50_000, 200 * MB, "Batch input file"),
}
MAX_REQUESTS = max(limit.max_requests for limit in LIMITS.values())
COMPLETION_WINDOW = "24h"
WINDOW_S = 24 * 3600.0


def check_size(provider: str, requests: int, payload_bytes: int) -> None:
    """Refuse a provider batch over its documented limits."""
    limit = LIMITS[provider]
    if requests > limit.max_requests:
        raise InvalidRequest(
            f"requests: {requests} requests routed to {provider}; a {provider} {limit.what} takes at most "
            f"{limit.max_requests:,}"
        )
    if payload_bytes > limit.max_bytes:
        raise InvalidRequest(
            f"requests: the {provider} {limit.what} would be {payload_bytes / MB:.1f} MB; at most "
            f"{limit.max_bytes // MB} MB"
        )
