"""Budgets and limits per tenant and per API key for the admin API: read and set through the
gateway's own `Limiter` (Redis, `gateway.limits`), so a change applies to the next request on
every replica, as `costmesh limits set` does.

A body sets all four at once (a PUT replaces, like `costmesh limits set`): `rpm` and `tpm`
whole numbers from 1 to 10^9, `usd_per_day` and `usd_per_month` from 0 (nothing may be spent)
to 10^9; null or absent is no limit. Anything else is a 400 naming the field.
"""

from __future__ import annotations

import asyncio
import math

from costmesh.errors import InvalidRequest
from costmesh.gateway.auth import KeyRecord
from costmesh.gateway.limits import Limiter, Limits, LimitStatus
from costmesh.vocabulary import usd, usd_of_micro

MAX_ROWS = 500
MAX_COUNT = 1_000_000_000  # rpm, tpm
MAX_USD = 1_000_000_000.0
FIELDS = ("rpm", "tpm", "usd_per_day", "usd_per_month")
READ_CONCURRENCY = 16


def parse_limits(body: object) -> Limits:
    """The body of PUT .../limits/...; InvalidRequest naming the field otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"body: a JSON object with {', '.join(FIELDS)} (null: no limit)")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidRequest(f"{str(unknown[0])[:64]}: unknown field (known: {', '.join(FIELDS)})")
    values: dict[str, int | float | None] = {}
    for name in ("rpm", "tpm"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= MAX_COUNT):
            raise InvalidRequest(f"{name}: a whole number from 1 to {MAX_COUNT:,}, or null for no limit")
        values[name] = value
    for name in ("usd_per_day", "usd_per_month"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or not 0 <= value <= MAX_USD):
            raise InvalidRequest(f"{name}: a number of USD from 0 to {MAX_USD:,.0f}, or null for no limit")
        values[name] = None if value is None else usd(float(value))
    return Limits(**values)


def limits_json(limits: Limits) -> dict:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "usd_per_day": limits.usd_per_day,
            "usd_per_month": limits.usd_per_month}


def row_json(tenant: str, key: KeyRecord | None, key_id: str, status: LimitStatus) -> dict:
    """One scope's limits and what was used against them now. The spend is counted only while a
    budget is set (`gateway.limits`); a bucket's level is None without its limit."""
    return {
        "tenant": tenant,
        "key_id": key_id,
        "key_name": key.name if key is not None else "",
        "limits": limits_json(status.limits),
        "spent_today_usd": usd_of_micro(status.spent_today_micro_usd),
        "spent_this_month_usd": usd_of_micro(status.spent_this_month_micro_usd),
        "requests_available": None if status.requests_available is None else math.floor(status.requests_available),
        "tokens_available": None if status.tokens_available is None else math.floor(status.tokens_available),
    }


async def list_limits(limiter: Limiter, keys: list[KeyRecord]) -> dict:
    """Every scope with limits set, and every tenant with an active key and its active keys (so a
    limit can be set where there is none yet): at most `MAX_ROWS`, tenants first, then their keys."""
    configured, more = await limiter.configured(MAX_ROWS)
    by_id = {k.key_id: k for k in keys}
    scopes = set(configured)
    for key in keys:
        if key.active and not key.admin:
            scopes.update({(key.tenant, ""), (key.tenant, key.key_id)})
    ordered = sorted(scopes)
    truncated = more or len(ordered) > MAX_ROWS
    ordered = ordered[:MAX_ROWS]
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def one(tenant: str, key_id: str) -> dict:
        async with gate:
            status = await limiter.status(tenant, key_id)
        return row_json(tenant, by_id.get(key_id), key_id, status)

    rows = await asyncio.gather(*(one(tenant, key_id) for tenant, key_id in ordered))
    return {"enforced": True, "rows": list(rows), "truncated": truncated}
