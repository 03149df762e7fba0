"""The one vocabulary of every surface a person reads: HTTP, the Python and Node clients, logs,
metrics, spans, GetStats and the report.

- Tiers: `trivial`, `simple`, `moderate`, `complex` (the protobuf `Tier` enum stays on the wire).
- Cache status: `miss`, `exact_hit`, `semantic_hit`, `bypassed`, `unavailable` (`CacheStatus`).
- Money: USD rounded to whole micro-dollars (the `*_micro_usd` integers the protos carry), never
  `-0.0`; sums are made from the integers, so a total is the sum of what was shown.
- A cache hit reports no token usage (no model was called this time; what the cached answer
  cost when it was made is its baseline).
"""

from __future__ import annotations

from typing import Any

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier
from costmesh.errors import InvalidRequest
from costmesh.pricing import MICROS_PER_USD, micro_usd

TIER_NAMES = tuple(t.name.lower() for t in Tier)  # cheapest first


def tier_name(value: int) -> str:
    """`simple` for `TIER_SIMPLE` (2); "" when unset or unknown."""
    try:
        return Tier(value).name.lower() if value else ""
    except ValueError:
        return ""


def cache_status_name(value: int) -> str:
    """`miss` for `CACHE_STATUS_MISS`; "unspecified" when unset."""
    try:
        return gw.CacheStatus.Name(value).removeprefix("CACHE_STATUS_").lower()
    except ValueError:
        return "unspecified"


def parse_tier(value: Any, field: str = "tier") -> Tier | None:
    """A tier as a caller may give it: a `Tier`, its name (`"complex"`, any case; `"TIER_COMPLEX"`
    too), its number, or None/""/0 for none. `InvalidRequest` naming `field` otherwise."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, Tier):
        return value
    if isinstance(value, str):
        name = value.strip().upper().removeprefix("TIER_")
        if name in Tier.__members__:
            return Tier[name]
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return Tier(value)
        except ValueError:
            pass
    raise InvalidRequest(f"{field}: {value!r} is not a tier; use one of {', '.join(TIER_NAMES)}")


def tier_key(name: str) -> str:
    """A tier name as GetStats' `tier_counts` or an older gateway gave it (`TIER_SIMPLE`) -> `simple`."""
    return name.removeprefix("TIER_").lower()


def usd(value: float) -> float:
    """Dollars rounded to whole micro-dollars, as shown: 0.0016649999999999998 -> 0.001665; never -0.0."""
    return micro_usd(value) / MICROS_PER_USD


def usd_text(value: float) -> str:
    """Dollars as text, to the micro-dollar: `0.001665`, `0.000000` (never `-0.000000`)."""
    return f"{usd(value):.6f}"


def usd_of_micro(value: int) -> float:
    return value / MICROS_PER_USD


def start_tier(routing: gw.RoutingPolicy, classified: int) -> int:
    """The tier the cascade started at: the classifier's, raised to `min_tier`, capped at
    `max_tier` (0 when nothing was classified: a pinned model). An answer served above it was
    upgraded by the cascade; one above `classified` only because of `min_tier` was not."""
    if not classified:
        return 0
    tier = max(classified, routing.min_tier) if routing.min_tier else classified
    return min(tier, routing.max_tier) if routing.max_tier else tier
