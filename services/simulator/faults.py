"""Fault injection: per-request header, admin rules (per model or provider), global rates."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator.errors import ApiError, invalid

TIMEOUT = "timeout"
STATUSES = (429, 500, 503, 529)
_MESSAGES = {
    429: "Rate limit exceeded (simulated). Please retry after the time in the retry-after header.",
    500: "Internal server error (simulated).",
    503: "Service unavailable (simulated).",
    529: "Overloaded (simulated).",
}


@dataclass(frozen=True)
class Fault:
    """One failure to serve: an HTTP status, or TIMEOUT (hold the request, then 504)."""

    kind: int | str
    retry_after_s: float | None = None

    def error(self) -> ApiError:
        if self.kind == TIMEOUT:
            return ApiError(504, "Request timed out (simulated).")
        headers = {}
        if self.kind == 429 and self.retry_after_s is not None:
            headers["retry-after"] = _seconds(self.retry_after_s)
        code = "rate_limit_exceeded" if self.kind == 429 else None
        return ApiError(int(self.kind), _MESSAGES[int(self.kind)], code=code, headers=headers)


@dataclass
class FaultRule:
    """Fail matching requests: the next `count` of them, each with probability `rate` (1 if unset)."""

    kind: int | str
    model: str | None = None
    provider: str | None = None
    count: int | None = None
    rate: float | None = None
    retry_after_s: float | None = None

    def matches(self, model: str, provider: str) -> bool:
        return (self.model is None or self.model == model) and (self.provider is None or self.provider == provider)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.kind,
            "model": self.model,
            "provider": self.provider,
            "count": self.count,
            "rate": self.rate,
            "retry_after": self.retry_after_s,
        }

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> FaultRule:
        """From the admin JSON `{"status": 503, "model"|"provider": ..., "count": N | "rate": p}`."""
        kind = parse_kind(body.get("status", body.get("fault")))
        count, rate = body.get("count"), body.get("rate")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise invalid("count must be a positive integer", "count")
        if rate is not None and (not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
            raise invalid("rate must be a number within [0, 1]", "rate")
        if count is None and rate is None:
            count = 1
        retry_after = body.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, (int, float)) or retry_after < 0):
            raise invalid("retry_after must be a non-negative number of seconds", "retry_after")
        return cls(
            kind, body.get("model"), body.get("provider"), count, None if rate is None else float(rate), retry_after
        )


def parse_kind(raw: Any) -> int | str:
    text = str(raw).strip().lower() if raw is not None else ""
    if text == TIMEOUT:
        return TIMEOUT
    if text.isdigit() and int(text) in STATUSES:
        return int(text)
    raise invalid(f"fault must be one of {[*STATUSES, TIMEOUT]}, got {raw!r}", "status")


class Faults:
    """Chooses the fault, if any, for one request. Random draws come from one seeded RNG."""

    def __init__(self, rates: Mapping[int, float], default_retry_after_s: float, seed: int):
        self.rates = dict(rates)
        self.default_retry_after_s = default_retry_after_s
        self._seed = seed
        self._rng = random.Random(seed)
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def reset(self) -> None:
        self.rules.clear()
        self._rng = random.Random(self._seed)

    def pick(self, model: str, provider: str, headers: Mapping[str, str]) -> Fault | None:
        header_retry = _retry_after(headers.get("x-sim-retry-after"))
        if headers.get("x-sim-fault"):
            return self._fault(parse_kind(headers["x-sim-fault"]), header_retry)
        for rule in list(self.rules):
            if not rule.matches(model, provider):
                continue
            if rule.rate is not None and self._rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return self._fault(rule.kind, header_retry if header_retry is not None else rule.retry_after_s)
        draw, edge = self._rng.random() if any(self.rates.values()) else 1.0, 0.0
        for status in STATUSES:
            edge += self.rates.get(status, 0.0)
            if draw < edge:
                return self._fault(status, header_retry)
        return None

    def _fault(self, kind: int | str, retry_after_s: float | None) -> Fault:
        if kind == 429 and retry_after_s is None:
            retry_after_s = self.default_retry_after_s
        return Fault(kind, retry_after_s)


def _retry_after(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise invalid(f"x-sim-retry-after must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise invalid("x-sim-retry-after must not be negative")
    return value


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
