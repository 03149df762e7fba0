"""The times a period of cost records is given in, for `costmesh report --since/--until` and the
dashboard API's `since`/`until`: `now`, a duration back from now (`90m`, `24h`, `7d`), a Unix
time, or an ISO date or date-time (UTC unless it says otherwise)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from costmesh.errors import InvalidRequest

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: the last time a date can name


def parse_time(value: str, name: str, now: float) -> float:
    """`value` as a Unix time; `InvalidRequest` naming `name` when it is none of the forms above."""
    value = value.strip()
    if value == "now":
        return now
    match = _RELATIVE.match(value)
    if match:
        return _bounded(now - float(match.group(1)) * _UNIT_S[match.group(2)], name, value)
    try:
        return _bounded(float(value), name, value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"{name}: {value!r} is not a time (try 2026-11-28, 2026-11-28T09:00, 24h or now)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _bounded(ts: float, name: str, value: str) -> float:
    if not (math.isfinite(ts) and 0 <= ts <= LATEST):
        raise InvalidRequest(f"{name}: {value!r} is outside 1970-01-01 .. 9999-12-31")
    return ts
