"""Per-tenant and per-key limits, kept in Redis and enforced atomically across gateway replicas.

Limits (set with `costmesh limits`): requests per minute and tokens per minute, token buckets
that refill continuously; a USD budget per UTC day and per UTC month. One Lua script admits a
request only if every limit of its tenant and of its API key allows it, and then takes one
request and its estimated tokens from the buckets and *reserves* its maximum cost in the
budgets; `settle` replaces the reservation by the actual cost, and the estimate by the actual
tokens. The reservations of requests in flight count as spent, so concurrent requests cannot
overrun a budget. A request refused is `LimitExceeded` (a RateLimited: RESOURCE_EXHAUSTED with
RetryInfo, HTTP 429 with retry-after) before any paid call; its retry-after is when the bucket
will have refilled enough, or when the budget's day or month ends (UTC).

Every key of one tenant shares its Redis hash tag (`{tenant}`), so the script runs on a cluster
too. The scopes that have settings are also members of one set (`SCOPES_INDEX`), so that the
admin API lists them without scanning a Redis the cache shares. Redis unreachable: requests are
admitted (`fail_open`, the default: the mesh serves when Redis is down, as the cache does) or
refused `Unavailable`. A reservation never settled (a
gateway killed mid-request) stays spent until its period ends: the budget errs on the safe side.

No gRPC here: the gateway's pipeline calls `admit` and `settle`.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from costmesh.errors import InvalidRequest, LimitExceeded, Unavailable

log = structlog.get_logger()

PREFIX = "costmesh:limits"
KEYS_PER_SCOPE = 5  # settings, request bucket, token bucket, day spend, month spend
BUCKET_TTL_MS = 3_600_000
_SETTINGS_KEY = re.compile(re.escape(PREFIX) + r":\{([^{}]+)\}(?::key:([^:{}]+))?:settings")
# The scopes that have settings, as JSON [tenant, key id] members (the admin API lists them without
# scanning Redis); the marker says the scopes set before the index existed were added to it.
SCOPES_INDEX = f"{PREFIX}:scopes"
SCOPES_INDEXED = f"{PREFIX}:scopes:complete"

# KEYS: per scope (tenant, then key) KEYS_PER_SCOPE keys. ARGV: scopes, tokens, max micro-USD,
# seconds left in the day and in the month (the spend keys expire a day after their period),
# requests (1; a batch takes one per item).
# Returns {admitted, retry_after_ms, scope index, what, limits met (0: none set, nothing to settle)}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local scopes, tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local left = {tonumber(ARGV[4]), tonumber(ARGV[5])}
local requests = tonumber(ARGV[6] or '1')
local writes = {}
for i = 0, scopes - 1 do
  local base = i * 5
  local conf = redis.call('HMGET', KEYS[base + 1], 'rpm', 'tpm', 'day_micro_usd', 'month_micro_usd')
  local buckets = {{conf[1], KEYS[base + 2], requests, 'requests per minute'},
                   {conf[2], KEYS[base + 3], tokens, 'tokens per minute'}}
  for _, b in ipairs(buckets) do
    local limit = tonumber(b[1])
    if limit and limit > 0 then
      local state = redis.call('HMGET', b[2], 'level', 'ts')
      local rate = limit / 60000
      local level = tonumber(state[1]) or limit
      local ts = tonumber(state[2]) or now
      level = math.min(limit, level + math.max(0, now - ts) * rate)
      local need = math.min(b[3], limit)
      if level < need then
        return {0, math.ceil((need - level) / rate), i, b[4]}
      end
      table.insert(writes, {'bucket', b[2], level - b[3]})
    end
  end
  local budgets = {{conf[3], KEYS[base + 4], 1, 'USD per day'}, {conf[4], KEYS[base + 5], 2, 'USD per month'}}
  for _, b in ipairs(budgets) do
    local limit = tonumber(b[1])
    if limit then
      local spent = tonumber(redis.call('GET', b[2]) or '0')
      if spent >= limit or spent + cost > limit then
        return {0, math.ceil(left[b[3]] * 1000), i, b[4]}
      end
      table.insert(writes, {'spend', b[2], left[b[3]] + 86400})
    end
  end
end
for _, w in ipairs(writes) do
  if w[1] == 'bucket' then
    redis.call('HSET', w[2], 'level', w[3], 'ts', now)
    redis.call('PEXPIRE', w[2], %d)
  elseif cost > 0 then
    redis.call('INCRBY', w[2], cost)
    redis.call('EXPIRE', w[2], math.ceil(w[3]))
  end
end
return {1, 0, -1, '', #writes}
""" % BUCKET_TTL_MS

# KEYS: token buckets, then spend keys (as many of each as ARGV says). ARGV: buckets, tokens to
# give back (the estimate less the actual; negative: take more), micro-USD to give back.
SETTLE = """
local buckets, tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if i <= buckets then
    if tokens ~= 0 and redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBYFLOAT', key, 'level', tokens)
    end
  elseif cost ~= 0 and redis.call('EXISTS', key) == 1 then
    redis.call('DECRBY', key, cost)
  end
end
return 1
"""


@dataclass(frozen=True)
class Limits:
    """What one tenant or one key may use; None: no limit."""

    rpm: int | None = None
    tpm: int | None = None
    usd_per_day: float | None = None
    usd_per_month: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "usd_per_day", "usd_per_month"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidRequest(f"{name}: must be 0 or more, got {value}")

    def to_fields(self) -> dict[str, str]:
        fields = {"rpm": self.rpm, "tpm": self.tpm, "day_micro_usd": _micro(self.usd_per_day),
                  "month_micro_usd": _micro(self.usd_per_month)}
        return {name: str(value) for name, value in fields.items() if value is not None}

    @classmethod
    def from_fields(cls, fields: dict) -> Limits:
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}

        def number(name: str) -> int | None:
            raw = fields.get(name)
            return None if raw is None else int(raw)

        day, month = number("day_micro_usd"), number("month_micro_usd")
        return cls(number("rpm"), number("tpm"), None if day is None else day / 1e6,
                   None if month is None else month / 1e6)


def _micro(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1_000_000)


def _scope(tenant: str, key_id: str = "") -> str:
    if not tenant:
        raise InvalidRequest("tenant: required")
    return f"{PREFIX}:{{{tenant}}}" + (f":key:{key_id}" if key_id else "")


@dataclass(frozen=True)
class Periods:
    """The UTC day and month a request falls in, and the seconds left in each."""

    day: str
    month: str
    day_left_s: float
    month_left_s: float

    @classmethod
    def at(cls, now: float) -> Periods:
        t = time.gmtime(now)
        day_end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
        last_day = calendar.monthrange(t.tm_year, t.tm_mon)[1]
        month_end = calendar.timegm((t.tm_year, t.tm_mon, last_day, 0, 0, 0)) + 86400
        return cls(time.strftime("%Y%m%d", t), time.strftime("%Y%m", t), day_end - now, month_end - now)


def _keys(scope: str, periods: Periods) -> list[str]:
    return [f"{scope}:settings", f"{scope}:rpm", f"{scope}:tpm", f"{scope}:spend:{periods.day}",
            f"{scope}:spend:{periods.month}"]


@dataclass(frozen=True)
class LimitStatus:
    """A tenant's or a key's limits and what was used against them now (GetStats)."""

    limits: Limits
    spent_today_micro_usd: int  # reservations of requests in flight included; kept only while a budget is set
    spent_this_month_micro_usd: int
    requests_available: float | None  # what the bucket holds now (negative: a batch's debt); None: no limit
    tokens_available: float | None


def _available(limit: int | None, state: list, now_ms: int) -> float | None:
    """A token bucket's level now, as the admit script would see it."""
    if not limit:
        return None
    level = float(state[0]) if state[0] is not None else float(limit)
    ts = int(float(state[1])) if state[1] is not None else now_ms
    return min(float(limit), level + max(0, now_ms - ts) * limit / 60_000)


@dataclass
class Reservation:
    """What `admit` took; `settle` gives back what the request did not use."""

    tokens: int
    micro_usd: int
    token_buckets: list[str] = field(default_factory=list)
    spends: list[str] = field(default_factory=list)
    settled: bool = False


class Limiter:
    def __init__(self, redis: Redis, *, fail_open: bool = True, clock=time.time):
        self._redis = redis
        self._fail_open = fail_open
        self._clock = clock
        self._admit = redis.register_script(ADMIT)
        self._settle = redis.register_script(SETTLE)

    # -- settings (costmesh limits) -----------------------------------------------------------

    async def set(self, tenant: str, limits: Limits, key_id: str = "") -> None:
        key = f"{_scope(tenant, key_id)}:settings"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if limits.to_fields():
                pipe.hset(key, mapping=limits.to_fields())
            await pipe.execute()
        member = json.dumps([tenant, key_id])  # apart from the transaction: another hash slot on a cluster
        if limits.to_fields():
            await self._redis.sadd(SCOPES_INDEX, member)
        else:
            await self._redis.srem(SCOPES_INDEX, member)

    async def configured(self, at_most: int) -> tuple[list[tuple[str, str]], bool]:
        """The (tenant, key id) scopes that have limits set ("" for a tenant's own), at most
        `at_most` of them, and whether there were more. From the index `set` keeps; the first call
        on a Redis whose index is not complete adds the scopes set before it existed (one SCAN)."""
        if not await self._redis.exists(SCOPES_INDEXED):
            await self._index_existing()
        found: set[tuple[str, str]] = set()
        async for raw in self._redis.sscan_iter(SCOPES_INDEX, count=500):
            try:
                tenant, key_id = json.loads(raw)
            except (ValueError, TypeError):
                continue
            found.add((str(tenant), str(key_id)))
            if len(found) > at_most:
                return sorted(found)[:at_most], True
        return sorted(found), False

    async def _index_existing(self) -> None:
        members = []
        async for raw in self._redis.scan_iter(match=f"{PREFIX}:{{*}}*:settings", count=1000):
            match = _SETTINGS_KEY.fullmatch(raw.decode(errors="replace") if isinstance(raw, bytes) else raw)
            if match:
                members.append(json.dumps([match.group(1), match.group(2) or ""]))
        if members:
            await self._redis.sadd(SCOPES_INDEX, *members)
        await self._redis.set(SCOPES_INDEXED, "1")

    async def get(self, tenant: str, key_id: str = "") -> Limits:
        return Limits.from_fields(await self._redis.hgetall(f"{_scope(tenant, key_id)}:settings"))

    async def usage(self, tenant: str, key_id: str = "") -> dict[str, float]:
        """USD spent (and reserved) today and this month (UTC)."""
        periods = Periods.at(self._clock())
        keys = _keys(_scope(tenant, key_id), periods)
        day, month = await self._redis.mget(keys[3], keys[4])
        return {"usd_today": int(day or 0) / 1e6, "usd_this_month": int(month or 0) / 1e6}

    async def status(self, tenant: str, key_id: str = "") -> LimitStatus:
        """The limits, the budgets' spend and the buckets' levels now (RedisError when unreachable)."""
        scope = _scope(tenant, key_id)
        keys = _keys(scope, Periods.at(self._clock()))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys[0])
            pipe.hmget(keys[1], "level", "ts")
            pipe.hmget(keys[2], "level", "ts")
            pipe.mget(keys[3], keys[4])
            pipe.time()
            fields, rpm_state, tpm_state, (day, month), (seconds, micros) = await pipe.execute()
        limits = Limits.from_fields(fields)
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return LimitStatus(limits, int(day or 0), int(month or 0), _available(limits.rpm, rpm_state, now_ms),
                           _available(limits.tpm, tpm_state, now_ms))

    # -- enforcement ----------------------------------------------------------------------------

    async def admit(self, tenant: str, key_id: str, tokens: int, max_micro_usd: int,
                    requests: int = 1) -> Reservation | None:
        """Take `requests` (one; a batch: one per item), `tokens` and `max_micro_usd` from the
        tenant's and the key's limits, or raise LimitExceeded. None: Redis was unreachable and the
        request goes on (fail open)."""
        periods = Periods.at(self._clock())
        scopes = [_scope(tenant)] + ([_scope(tenant, key_id)] if key_id else [])
        keys = [k for scope in scopes for k in _keys(scope, periods)]
        args = [len(scopes), max(0, int(tokens)), max(0, int(max_micro_usd)), periods.day_left_s,
                periods.month_left_s, max(1, int(requests))]
        try:
            admitted, retry_ms, index, what, *limited = await self._admit(keys=keys, args=args)
        except RedisError as exc:
            if not self._fail_open:
                raise Unavailable(f"limits: Redis is unreachable ({type(exc).__name__})") from None
            log.warning("limits not enforced: Redis is unreachable", error=type(exc).__name__)
            return None
        if not admitted:
            whose = f"tenant {tenant!r}" if int(index) == 0 else f"key {key_id!r}"
            what = what.decode() if isinstance(what, bytes) else what
            raise LimitExceeded(f"{whose}: over its limit of {what}", int(retry_ms) / 1000)
        if not limited or not int(limited[0]):  # no limit set: nothing was taken, nothing to settle
            return Reservation(int(tokens), int(max_micro_usd))
        return Reservation(int(tokens), int(max_micro_usd),
                           token_buckets=[keys[i * KEYS_PER_SCOPE + 2] for i in range(len(scopes))],
                           spends=[keys[i * KEYS_PER_SCOPE + j] for i in range(len(scopes)) for j in (3, 4)])

    async def settle(self, reservation: Reservation | None, tokens: int, micro_usd: int) -> None:
        """The request is done: it used `tokens` and cost `micro_usd` (0 when it failed)."""
        if reservation is None or reservation.settled:
            return
        reservation.settled = True
        give_tokens = reservation.tokens - max(0, int(tokens))
        give_micro = reservation.micro_usd - max(0, int(micro_usd))
        if (not give_tokens and not give_micro) or not (reservation.token_buckets or reservation.spends):
            return
        try:
            await self._settle(keys=[*reservation.token_buckets, *reservation.spends],
                               args=[len(reservation.token_buckets), give_tokens, give_micro])
        except RedisError as exc:  # the reservation stays spent: the budget errs on the safe side
            log.warning("limits: settling failed", error=type(exc).__name__)
