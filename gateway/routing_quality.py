"""The live quality of the router's answers per tenant, from shadow checks (issue 22), and the
tenant's routing threshold recalibrated from it; kept in Redis so every gateway replica agrees.

For tenants that consented (`shadow_rate` in COSTMESH_ROUTER_TENANT_POLICIES), a share of the
answers the router served below the premium tier (model "auto") is re-asked of the premium model in
the background and judged (`gateway.routing_shadow`). Each verdict lands here:

- per tier, at the tenant's current operating point (since its threshold last moved): verdicts,
  answers judged as good as the premium model's, and answers served (checked or not: the tier mix);
  the same since the first check;
- the quality the tenant's routed answers keep, as a share of all-premium quality (what the
  router's operating point promises: "95% of all-strong quality"): 1 - c x (1 - r), with c the
  share of answers served below the premium tier and r the share of checked ones judged as good
  (the premium tier's answers keep all of it by definition). Its lower bound puts r's one-sided
  95% Wilson lower bound in the same formula. The checks are drawn at one rate over every cheap
  tier, so r pools them;
- the tenant's threshold offset (<= 0): once `min_verdicts` verdicts are in at one operating
  point, it falls by `step` (down to -`max_offset`) while the lower bound is under `target`, and
  rises by `step` (never above 0, the calibrated threshold) while the bound's loss is under half
  of the loss the target allows. A move starts the counts at the new point afresh. One Lua
  script decides, so concurrent verdicts on several replicas move it once;
- the judged rows (the prompt, the cheap answer, the premium one, the verdict), only for tenants
  that also consented to keeping them (`keep_shadow_rows`), the last `max_rows` per tenant, for
  `costmesh train-router --from-records`.

The classifier applies the offset (`ClassifyRequest.threshold_offset`): the gateway reads it from
a local copy refreshed in the background every `refresh_s` seconds (a request never waits on it).

Redis keys: `<prefix>:routing-shadow:<tenant digest>` (a hash), `<prefix>:routing-rows:<tenant
digest>` (a list of JSON lines), `<prefix>:routing-shadow-tenants` (a set of tenant ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar

import structlog
from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from redis.asyncio import Redis

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.errors import ConfigError
from costmesh.intervals import Z_ONE_SIDED_95, quality_bound
from costmesh.settings import Settings

log = structlog.get_logger()
TIERS = ("trivial", "simple", "moderate", "complex")
RAISE_BELOW = 0.5  # the threshold rises back while the bound's loss is under this share of the allowed loss
MAX_TENANTS_LISTED = 1000

# KEYS[1]: the tenant's hash. ARGV: tier, as good (0|1), recalibrate (0|1), target, min verdicts,
# step, max offset, z, raise above (a lower bound over it raises the threshold), now, the cheap
# tiers (comma-separated), every tier. Counts the verdict, then moves the offset when the lower
# bound of the quality kept at the current point calls for it (and starts those counts afresh).
_RECORD = """
local h = KEYS[1]
local tier = ARGV[1]
redis.call('HINCRBY', h, 'v:' .. tier, 1)
redis.call('HINCRBY', h, 'tv:' .. tier, 1)
if ARGV[2] == '1' then
  redis.call('HINCRBY', h, 'g:' .. tier, 1)
  redis.call('HINCRBY', h, 'tg:' .. tier, 1)
end
local function num(field)
  return tonumber(redis.call('HGET', h, field) or '0') or 0
end
local n, k, cheap, served = 0, 0, 0, 0
for t in string.gmatch(ARGV[11], '[^,]+') do
  n = n + num('v:' .. t)
  k = k + num('g:' .. t)
  cheap = cheap + num('s:' .. t)
end
for t in string.gmatch(ARGV[12], '[^,]+') do
  served = served + num('s:' .. t)
end
local offset = num('offset')
if ARGV[3] == '1' and n >= tonumber(ARGV[5]) then
  local z = tonumber(ARGV[8])
  local miss = 1 - k / n
  local centre = miss + z * z / (2 * n)
  local spread = z * math.sqrt(miss * (1 - miss) / n + z * z / (4 * n * n))
  local upper_miss = math.min(1, (centre + spread) / (1 + z * z / n))
  local share = 1
  if served > 0 then share = math.min(1, cheap / served) end
  local lower = 1 - share * upper_miss
  local step = tonumber(ARGV[6])
  local floor = -tonumber(ARGV[7])
  local moved = nil
  if lower < tonumber(ARGV[4]) and offset > floor then
    moved = math.max(floor, offset - step)
  elseif lower > tonumber(ARGV[9]) and offset < 0 then
    moved = math.min(0, offset + step)
  end
  if moved then
    redis.call('HSET', h, 'offset', tostring(moved), 'moved_at', ARGV[10])
    redis.call('HINCRBY', h, 'moves', 1)
    for t in string.gmatch(ARGV[12], '[^,]+') do
      redis.call('HDEL', h, 'v:' .. t, 'g:' .. t, 's:' .. t)
    end
  end
end
return redis.call('HGETALL', h)
"""


@dataclass(frozen=True)
class TenantPolicy:
    shadow_rate: float = 0.0          # the share of the tenant's cheap answers checked (0: none, the default)
    keep_shadow_rows: bool = False    # keep its judged rows for `costmesh train-router --from-records`


def parse_policies(raw: str) -> dict[str, TenantPolicy]:
    """COSTMESH_ROUTER_TENANT_POLICIES: `{"acme": {"shadow_rate": 0.05, "keep_shadow_rows": true}}`."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        policies = {}
        for tenant, entry in data.items():
            unknown = set(entry) - {"shadow_rate", "keep_shadow_rows"}
            if unknown:
                raise ValueError(f"tenant {tenant!r}: unknown keys {sorted(unknown)}")
            policy = TenantPolicy(float(entry.get("shadow_rate", 0.0)), bool(entry.get("keep_shadow_rows", False)))
            if not 0.0 <= policy.shadow_rate <= 1.0:
                raise ValueError(f"tenant {tenant!r}: shadow_rate must be in [0, 1]")
            policies[str(tenant)] = policy
        return policies
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"COSTMESH_ROUTER_TENANT_POLICIES: {exc}") from None


class RoutingQualitySettings(Settings):
    """Shadow checks of the router's cheap answers, run by the gateway (`routing_shadow`)."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_ROUTER_SHADOW_")
    used_by: ClassVar[str] = "gateway"

    target: float = Field(0.95, gt=0.0, le=1.0, validation_alias="COSTMESH_ROUTER_QUALITY_TARGET",
                          description="the share of all-premium quality the routed answers keep")
    min_verdicts: int = Field(100, ge=1, description="verdicts at one operating point before the routing "
                              "threshold moves")
    threshold_step: float = Field(0.02, gt=0.0, le=1.0, description="how far one move takes the threshold")
    max_offset: float = Field(1.0, ge=0.0, le=1.0, description="how far under the calibrated threshold it may go")
    recalibrate: bool = Field(True, description="move the threshold (`false`: count verdicts only)")
    max_rows: int = Field(1000, ge=0, description="judged rows kept per consenting tenant, for "
                          "`costmesh train-router --from-records`")
    refresh_s: float = Field(5.0, gt=0.0, description="how often the requests' copy of the offsets is refreshed")
    prefix: str = Field("costmesh", min_length=1, description="the prefix of the Redis keys")
    judge_model: str | None = Field(None, description="the judge of a routing check (default: the premium model)")
    policies: Annotated[dict[str, TenantPolicy], NoDecode] = Field(
        default_factory=dict, validation_alias="COSTMESH_ROUTER_TENANT_POLICIES",
        description='per tenant, JSON: `{"acme": {"shadow_rate": 0.05, "keep_shadow_rows": true}}`: the share of '
        "its cheap answers also asked of the premium model and judged (its consent; 0 or absent: never), and "
        "its consent to keep the judged rows")

    @field_validator("policies", mode="before")
    @classmethod
    def _policies(cls, value: object) -> object:
        return parse_policies(value) if isinstance(value, str) else value

    def policy(self, tenant_id: str) -> TenantPolicy:
        return self.policies.get(tenant_id) or TenantPolicy()

    @property
    def any_consent(self) -> bool:
        return any(p.shadow_rate > 0 for p in self.policies.values())


@dataclass(frozen=True)
class TierCounts:
    verdicts: int = 0
    as_good: int = 0
    served: int = 0
    total_verdicts: int = 0
    total_as_good: int = 0

    @property
    def quality_retained(self) -> float:
        return quality_bound(self.as_good, self.verdicts)[0]

    @property
    def lower_bound(self) -> float:
        return quality_bound(self.as_good, self.verdicts, Z_ONE_SIDED_95)[1]


@dataclass(frozen=True)
class RoutingEstimate:
    """A tenant's live routing quality (see `costmesh.gateway.v1.RoutingQuality`)."""

    tenant_id: str
    tiers: Mapping[str, TierCounts]
    cheap_tiers: tuple[str, ...]
    target: float
    min_verdicts: int
    offset: float = 0.0
    moves: int = 0
    shadow_rate: float = 0.0

    @property
    def cheap(self) -> TierCounts:
        """The tiers below the premium one, pooled."""
        parts = [self.tiers.get(t, TierCounts()) for t in self.cheap_tiers]
        return TierCounts(*(sum(getattr(p, name) for p in parts) for name in
                            ("verdicts", "as_good", "served", "total_verdicts", "total_as_good")))

    @property
    def verdicts(self) -> int:
        return self.cheap.verdicts

    @property
    def total_verdicts(self) -> int:
        return self.cheap.total_verdicts

    @property
    def cheap_share(self) -> float:
        """The share of routed answers served below the premium tier (1 before any is counted)."""
        served = sum(c.served for c in self.tiers.values())
        return min(1.0, self.cheap.served / served) if served else 1.0

    @property
    def quality_retained(self) -> float:
        return 1.0 - self.cheap_share * (1.0 - self.cheap.quality_retained)

    @property
    def lower_bound(self) -> float:
        return 1.0 - self.cheap_share * (1.0 - self.cheap.lower_bound)

    @property
    def under_target(self) -> bool:
        """Enough verdicts at this operating point, and their lower bound under the target."""
        return self.verdicts >= self.min_verdicts and self.lower_bound < self.target


def tiers_below(tier: int) -> tuple[str, ...]:
    """The tier names under `tier` (a `common.Tier` value): the cheap tiers when it is the premium model's."""
    return tuple(name for name in TIERS if common.Tier.Value(f"TIER_{name.upper()}") < tier)


def _digest(tenant_id: str) -> str:
    return hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


class RoutingLedger:
    """Per-tenant verdicts, served counts, threshold offsets and judged rows in Redis.

    `cheap_tiers`: the tiers below the premium model's (their answers are checked)."""

    def __init__(self, client: Redis, settings: RoutingQualitySettings, *, cheap_tiers: Sequence[str],
                 clock: Callable[[], float] = time.monotonic, flush_s: float = 1.0):
        self._client = client
        self.settings = settings
        self.cheap_tiers = tuple(cheap_tiers)
        self._clock = clock
        self._flush_s = flush_s
        self._record = client.register_script(_RECORD)
        self._offsets: dict[str, tuple[float, float]] = {}  # tenant -> (offset, read at)
        self._refreshing: dict[str, asyncio.Task] = {}
        self._served: Counter[tuple[str, str]] = Counter()  # (tenant, tier) -> answers not yet in Redis
        self._flusher: asyncio.Task | None = None

    def _key(self, tenant_id: str) -> str:
        return f"{self.settings.prefix}:routing-shadow:{_digest(tenant_id)}"

    def _rows_key(self, tenant_id: str) -> str:
        return f"{self.settings.prefix}:routing-rows:{_digest(tenant_id)}"

    @property
    def _tenants_key(self) -> str:
        return f"{self.settings.prefix}:routing-shadow-tenants"

    # -- requests -----------------------------------------------------------------------

    def offset_for(self, tenant_id: str) -> float:
        """The tenant's threshold offset for a classification, without waiting: the local copy
        (refreshed in the background once older than `refresh_s`); 0 for a tenant that did not
        consent, and until the first read."""
        if self.settings.policy(tenant_id).shadow_rate <= 0:
            return 0.0
        known = self._offsets.get(tenant_id)
        if (known is None or self._clock() - known[1] >= self.settings.refresh_s) and tenant_id not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(tenant_id))
            self._refreshing[tenant_id] = task
            task.add_done_callback(lambda _t: self._refreshing.pop(tenant_id, None))
        return known[0] if known is not None else 0.0

    async def _refresh(self, tenant_id: str) -> None:
        try:
            await self.estimate(tenant_id)
        except Exception as exc:  # noqa: BLE001 - requests keep the offset they had
            log.warning("routing threshold offset not refreshed", error=str(exc))

    def count_served(self, tenant_id: str, tier: str) -> None:
        """One more answer the router served the tenant at `tier` (written to Redis within `flush_s`)."""
        self._served[(tenant_id, tier)] += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_s)
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - the tier mix is an estimate; a lost second is tolerable
            log.warning("routing served counts not written", error=str(exc))

    async def flush(self) -> None:
        """Write the served counts kept so far."""
        if not self._served:
            return
        served, self._served = self._served, Counter()
        async with self._client.pipeline(transaction=False) as pipe:
            for (tenant_id, tier), count in served.items():
                pipe.hincrby(self._key(tenant_id), f"s:{tier}", count)
                pipe.sadd(self._tenants_key, tenant_id)
            await pipe.execute()

    # -- verdicts -----------------------------------------------------------------------

    async def record(self, tenant_id: str, tier: str, as_good: bool) -> RoutingEstimate:
        """Count one verdict on an answer of `tier`; the offset moves when the estimate calls for it."""
        await self.flush()  # the tier mix the decision reads includes every answer seen so far
        s = self.settings
        args = [tier, int(as_good), int(s.recalibrate), repr(s.target), s.min_verdicts, repr(s.threshold_step),
                repr(s.max_offset), repr(Z_ONE_SIDED_95), repr(1.0 - (1.0 - s.target) * RAISE_BELOW),
                repr(time.time()), ",".join(self.cheap_tiers), ",".join(TIERS)]
        before = self._offsets.get(tenant_id, (None, 0.0))[0]
        raw = await self._record(keys=[self._key(tenant_id)], args=args)
        await self._client.sadd(self._tenants_key, tenant_id)
        estimate = self._remember(self._estimate(tenant_id, _pairs_of(raw)))
        if estimate.offset != (before or 0.0):
            log.info("shadow checks moved the tenant's routing threshold", tenant_id=tenant_id,
                     offset=estimate.offset, was=before or 0.0, lower_bound=round(estimate.lower_bound, 4))
        return estimate

    async def estimate(self, tenant_id: str) -> RoutingEstimate:
        raw = await self._client.hgetall(self._key(tenant_id))
        return self._remember(self._estimate(tenant_id, raw))

    async def estimates(self, limit: int = MAX_TENANTS_LISTED) -> list[RoutingEstimate]:
        """Every tenant with a count (at most `limit`), for the metrics."""
        tenants: list[str] = []
        async for member in self._client.sscan_iter(self._tenants_key, count=200):
            tenants.append(member.decode() if isinstance(member, bytes) else member)
            if len(tenants) >= limit:
                break
        return [await self.estimate(tenant_id) for tenant_id in sorted(tenants)]

    def _remember(self, estimate: RoutingEstimate) -> RoutingEstimate:
        self._offsets[estimate.tenant_id] = (estimate.offset, self._clock())
        return estimate

    def _estimate(self, tenant_id: str, raw: Mapping) -> RoutingEstimate:
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in (raw or {}).items()}

        def num(name: str) -> int:
            return int(fields.get(name, 0))

        tiers = {t: TierCounts(num(f"v:{t}"), num(f"g:{t}"), num(f"s:{t}"), num(f"tv:{t}"), num(f"tg:{t}"))
                 for t in TIERS}
        return RoutingEstimate(
            tenant_id=tenant_id, tiers=tiers, cheap_tiers=self.cheap_tiers, target=self.settings.target,
            min_verdicts=self.settings.min_verdicts, offset=float(fields.get("offset", 0.0)),
            moves=num("moves"), shadow_rate=self.settings.policy(tenant_id).shadow_rate,
        )

    # -- judged rows --------------------------------------------------------------------

    async def keep_row(self, tenant_id: str, row: dict) -> None:
        """Keep a judged row (only called for tenants that consented), the newest `max_rows`."""
        if self.settings.max_rows <= 0:
            return
        key = self._rows_key(tenant_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(row, separators=(",", ":")))
            pipe.ltrim(key, 0, self.settings.max_rows - 1)
            await pipe.execute()

    async def rows(self, tenant_id: str) -> list[dict]:
        """The tenant's kept rows, newest first."""
        return [json.loads(line) for line in await self._client.lrange(self._rows_key(tenant_id), 0, -1)]

    async def aclose(self) -> None:
        for task in [*self._refreshing.values(), *([self._flusher] if self._flusher else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.flush()


def _pairs_of(raw) -> dict:
    """HGETALL's reply from a script (a flat list) as a dict."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2]))
