"""When a failed call may be sent again, and how long to wait first.

A completion costs money and may already have run when its call fails, so by default it is
retried only when the request provably never reached the gateway (the connection could not
be made). Reads (`stats`) are idempotent and are retried on any UNAVAILABLE. Callers who
accept paying twice can opt in with `retry_sent_completions=True`, which also retries
UNAVAILABLE after sending and RESOURCE_EXHAUSTED (after the server's retry-after hint).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

# What gRPC reports when no connection to the server could be made: nothing was sent.
_NOT_CONNECTED = ("failed to connect", "connection refused", "dns resolution failed",
                  "name resolution failure", "no address", "connections to all backends failing")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    retry_sent_completions: bool = False  # opt in: a completion may run (and be billed) more than once

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter exponential backoff before attempt `attempt + 1` (attempt counts from 1)."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return (rng or random).uniform(0, cap)


NO_RETRY = RetryPolicy(max_attempts=1)


def never_sent(error: grpc.RpcError) -> bool:
    """True when the call failed before the request could reach the server."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    if any(key == "grpc-status-details-bin" for key, _ in (error.trailing_metadata() or ())):
        return False  # the gateway itself answered UNAVAILABLE
    details = (error.details() or "").lower()
    return any(marker in details for marker in _NOT_CONNECTED)


def may_retry(error: grpc.RpcError, *, idempotent: bool, policy: RetryPolicy) -> bool:
    code = error.code()
    if never_sent(error):
        return True
    if code == grpc.StatusCode.UNAVAILABLE:
        return idempotent or policy.retry_sent_completions
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return policy.retry_sent_completions
    return False


def delay_s(error: grpc.RpcError, attempt: int, policy: RetryPolicy, retry_after_s: float | None) -> float:
    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after_s is not None:
        return retry_after_s
    return policy.backoff_s(attempt)
