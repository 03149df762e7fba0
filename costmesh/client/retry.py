"""When a failed call may be sent again: gRPC's own retries, configured per method.

The client does not retry in a loop of its own. A `RetryPolicy` becomes the channel's service
config (`grpc.service_config`, a `methodConfig` per gateway method), and gRPC core retries:

- a call that never left the client (no connection could be made, or the server refused the
  stream before reading it) is retried transparently by gRPC, whatever the method;
- every call waits for the connection (`wait_for_ready`) within its deadline instead of failing
  while the channel is still connecting, unless `max_attempts=1` (then it fails at once);
- reads (`GetStats`) are idempotent and retried on `UNAVAILABLE`;
- a completion (`Complete`, `StreamComplete`) costs money and may already have run when its call
  fails, so once sent it is not retried, unless `retry_sent_completions=True`: then it is also
  retried on `UNAVAILABLE` and `RESOURCE_EXHAUSTED` (the retry-after gRPC honours is the server's
  `grpc-retry-pushback-ms` trailer; otherwise the policy's backoff). A stream is never retried
  once a response has arrived (gRPC commits the call at its first message).

The deadline (`timeout_s`) covers every attempt. gRPC caps `max_attempts` at 5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SERVICE = "costmesh.gateway.v1.GatewayService"
COMPLETIONS = ("Complete", "StreamComplete")
READS = ("GetStats",)
MAX_ATTEMPTS_CAP = 5  # gRPC core's own limit on retryPolicy.maxAttempts


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    retry_sent_completions: bool = False  # opt in: a completion may run (and be billed) more than once

    @property
    def wait_for_ready(self) -> bool:
        """Whether a call waits (within its deadline) for a connection: unless retries are off."""
        return self.max_attempts > 1

    def _retry_policy(self, codes: list[str]) -> dict[str, Any]:
        return {
            "maxAttempts": min(self.max_attempts, MAX_ATTEMPTS_CAP),
            "initialBackoff": _duration(self.initial_backoff_s),
            "maxBackoff": _duration(max(self.max_backoff_s, self.initial_backoff_s)),
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": codes,
        }

    def method_config(self) -> list[dict[str, Any]]:
        """The `methodConfig` entries: reads retried on UNAVAILABLE; completions only when opted in."""
        if self.max_attempts <= 1:
            return []  # gRPC still retries transparently what never left the client
        reads: dict[str, Any] = {"name": [{"service": SERVICE, "method": m} for m in READS],
                                 "retryPolicy": self._retry_policy(["UNAVAILABLE"])}
        if not self.retry_sent_completions:
            return [reads]
        completions = {"name": [{"service": SERVICE, "method": m} for m in COMPLETIONS],
                       "retryPolicy": self._retry_policy(["UNAVAILABLE", "RESOURCE_EXHAUSTED"])}
        return [reads, completions]

    def service_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        method_config = self.method_config()
        if method_config:
            config["methodConfig"] = method_config
        return config

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC channel options carrying this policy: retries on, the service config, and the
        policy's backoff for reconnecting (so a call waiting for the gateway sees it come up soon)."""
        initial_ms = max(1, int(self.initial_backoff_s * 1000))
        return [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(self.service_config())),
            ("grpc.service_config_disable_resolution", 1),  # no DNS TXT record replaces it
            ("grpc.initial_reconnect_backoff_ms", initial_ms),
            ("grpc.max_reconnect_backoff_ms", max(initial_ms, int(self.max_backoff_s * 1000))),
        ]


def _duration(seconds: float) -> str:
    """A protobuf JSON Duration ("0.1s"); gRPC wants it over zero."""
    return f"{max(seconds, 0.001):.9f}".rstrip("0").rstrip(".") + "s"


NO_RETRY = RetryPolicy(max_attempts=1)
