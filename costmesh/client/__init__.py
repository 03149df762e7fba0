"""The typed Python client of the costmesh gateway (gRPC), sync and async.

    from costmesh.client import Client
    with Client("127.0.0.1:50051", api_key="cm_...") as client:
        answer = client.complete("What is a B-tree?", max_tokens=300)
        print(answer.text, answer.cost.total_usd, answer.saving_usd)

Failures raise the costmesh errors (`costmesh.errors`): `Unauthenticated`, `InvalidRequest`,
`RateLimited` (with `retry_after_s`), `Unavailable`, `UpstreamTimeout` (deadline passed)...
"""

from costmesh.catalog import Tier
from costmesh.client.aio import AsyncClient
from costmesh.client.request import ChatMessage, CompletionRequest, ToolCall, ToolSpec
from costmesh.client.retry import NO_RETRY, RetryPolicy
from costmesh.client.sync import Client
from costmesh.client.types import (
    CacheStatus,
    Completion,
    CostBreakdown,
    LimitUsage,
    Savings,
    Stats,
    StreamEvent,
    TextDelta,
    Usage,
)
from costmesh.errors import (
    CostmeshError,
    InvalidRequest,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "ToolCall",
    "ToolSpec",
    "AsyncClient", "CacheStatus", "ChatMessage", "Client", "Completion", "CompletionRequest", "CostBreakdown",
    "CostmeshError", "InvalidRequest", "LimitUsage", "NO_RETRY", "RateLimited", "RetryPolicy", "Savings", "Stats",
    "StreamEvent", "TextDelta", "Tier", "Unauthenticated", "Unavailable", "UpstreamError", "UpstreamTimeout", "Usage",
]
