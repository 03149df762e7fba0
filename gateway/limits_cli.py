"""`costmesh limits`: set and show a tenant's or an API key's limits (kept in Redis, read by every
gateway replica on each request: a change applies to the next request)."""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis
from redis.exceptions import RedisError

from costmesh.errors import ConfigError, Unavailable
from costmesh.gateway.limits import Limiter, Limits


def add_arguments(parser) -> None:
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="the gateway's Redis (default: $REDIS_URL)")
    actions = parser.add_subparsers(dest="action", required=True)
    set_ = actions.add_parser("set", help="replace the limits of a tenant (or of one of its keys)")
    show = actions.add_parser("show", help="the limits and what was spent today and this month (UTC)")
    for action in (set_, show):
        action.add_argument("--tenant", required=True)
        action.add_argument("--key-id", default="", help="a key of the tenant (`costmesh keys list`)")
    set_.add_argument("--rpm", type=int, default=None, help="requests per minute")
    set_.add_argument("--tpm", type=int, default=None, help="tokens per minute (prompt and answer)")
    set_.add_argument("--usd-per-day", type=float, default=None, help="budget per UTC day")
    set_.add_argument("--usd-per-month", type=float, default=None, help="budget per UTC month")


async def _run(args) -> int:
    redis = Redis.from_url(args.redis_url)
    try:
        limiter = Limiter(redis, fail_open=False)
        if args.action == "set":
            await limiter.set(args.tenant, Limits(args.rpm, args.tpm, args.usd_per_day, args.usd_per_month),
                              args.key_id)
        limits = await limiter.get(args.tenant, args.key_id)
        usage = await limiter.usage(args.tenant, args.key_id)
    finally:
        await redis.aclose()
    who = f"tenant {args.tenant}" + (f", key {args.key_id}" if args.key_id else "")
    shown = ", ".join(f"{name} {value:g}" for name, value in vars(limits).items() if value is not None)
    print(f"{who}: {shown or 'no limits'}")
    print(f"spent (budgets only): {usage['usd_today']:.6f} USD today, {usage['usd_this_month']:.6f} USD this month")
    return 0


def run(args) -> int:
    if not args.redis_url:
        raise ConfigError("give --redis-url or set REDIS_URL")
    try:
        return asyncio.run(_run(args))
    except RedisError as exc:
        raise Unavailable(f"Redis at {args.redis_url}: {type(exc).__name__}") from None
