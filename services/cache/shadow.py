"""Shadow checks on the cache's side: the tenant's live false-hit estimate and its threshold.

For tenants that consented (`shadow_rate` in COSTMESH_CACHE_TENANT_POLICIES), a share of the
semantic hits is drawn for a shadow check: the gateway asks the model too, in the background,
and sends both answers to `JudgeShadow`. Each verdict lands here, in Redis (so every cache
replica sees the same counts, and they outlive a restart):

- the tenant's counts: verdicts and false hits since its threshold last moved (the current
  operating point) and since the first check;
- its verifier threshold: after at least `min_verdicts` verdicts at one threshold, it rises by
  `step` (up to `max_threshold`) while a one-sided 95% Wilson bound of the false-hit rate is over
  `max_false_hit_rate`: the lower bound (`raise_when="lower"`, the default: only when the rate is
  clearly over the maximum) or the upper bound (`"upper"`: unless it is clearly under); it falls by `step`
  (never below the calibrated threshold) while the upper bound is under half of the maximum. A
  move starts the counts at the new threshold afresh. The decision runs in one Lua script, so
  concurrent verdicts on several replicas move it once;
- the labelled pairs (question, the served entry's question, verdict), only for tenants that
  also consented to keeping them (`keep_shadow_pairs`), the last `max_pairs` per tenant, for
  `costmesh train-verifier --from-records`.

Lookups read the tenant's threshold from a local copy refreshed in the background every
`refresh_s` seconds: a lookup never waits on it (until the first refresh, the calibrated one).

Redis keys: `<prefix>:shadow:<tenant hash>` (a hash), `<prefix>:shadow-pairs:<tenant hash>`
(a list of JSON lines), `<prefix>:shadow-tenants` (a set of tenant ids, for the metrics).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.asyncio import Redis

from costmesh.intervals import Z_ONE_SIDED_95, false_hit_bound, wilson_lower
from costmesh.settings import Settings

from .semantic import tag_value

log = structlog.get_logger("costmesh.cache")
LOWER_BELOW = 0.5  # the threshold falls while the bound is under this share of the maximum
MAX_TENANTS_LISTED = 1000  # the metrics read at most this many tenants' estimates

# KEYS[1]: the tenant's hash. ARGV: different (0|1), recalibrate (0|1), calibrated threshold,
# max false-hit rate, min verdicts, step, max threshold, z, lower-below share, now, raise rule
# ('upper': rise while the upper bound is over the maximum; 'lower': only while the lower bound is).
# Counts the verdict, then moves the threshold when the Wilson bound of the counts at the
# current threshold calls for it (and starts those counts afresh). Returns the hash.
_RECORD = """
local h = KEYS[1]
redis.call('HINCRBY', h, 'verdicts', 1)
redis.call('HINCRBY', h, 'total_verdicts', 1)
if ARGV[1] == '1' then
  redis.call('HINCRBY', h, 'false_hits', 1)
  redis.call('HINCRBY', h, 'total_false_hits', 1)
end
local n = tonumber(redis.call('HGET', h, 'verdicts'))
local k = tonumber(redis.call('HGET', h, 'false_hits') or '0')
local calibrated = tonumber(ARGV[3])
local t = tonumber(redis.call('HGET', h, 'threshold') or ARGV[3])
if t < calibrated then t = calibrated end
if ARGV[2] == '1' and n >= tonumber(ARGV[5]) then
  local z = tonumber(ARGV[8])
  local rate = k / n
  local centre = rate + z * z / (2 * n)
  local spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
  local upper = math.min(1, (centre + spread) / (1 + z * z / n))
  local evidence = upper
  if ARGV[11] == 'lower' then  -- the one-sided lower bound: 1 - the upper bound of the other share
    local other = 1 - rate
    local o_centre = other + z * z / (2 * n)
    local o_spread = z * math.sqrt(other * (1 - other) / n + z * z / (4 * n * n))
    evidence = math.max(0, 1 - math.min(1, (o_centre + o_spread) / (1 + z * z / n)))
  end
  local max_rate = tonumber(ARGV[4])
  local step = tonumber(ARGV[6])
  local ceiling = tonumber(ARGV[7])
  local moved = nil
  if evidence > max_rate and t < ceiling then
    moved = math.min(ceiling, t + step)
  elseif upper < max_rate * tonumber(ARGV[9]) and t > calibrated then
    moved = math.max(calibrated, t - step)
  end
  if moved then
    redis.call('HSET', h, 'threshold', tostring(moved), 'verdicts', 0, 'false_hits', 0, 'moved_at', ARGV[10])
    redis.call('HINCRBY', h, 'moves', 1)
  end
end
return redis.call('HGETALL', h)
"""


class ShadowSettings(Settings):
    """How the live estimate is kept and acted on (the share of hits checked is per tenant, in
    the tenant policies: `shadow_rate`, consent to keep pairs: `keep_shadow_pairs`)."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_CACHE_SHADOW_")
    used_by: ClassVar[str] = "cache"

    max_false_hit_rate: float | None = Field(
        None, ge=0.0, le=1.0,
        description="the share of shadow-checked hits judged wrong that the threshold keeps the live estimate "
                    "under (unset: 1 - the verifier's calibrated precision; a verifier without a calibration: "
                    "`COSTMESH_CACHE_MAX_FALSE_HIT_RATE`)")
    min_verdicts: int = Field(100, ge=1, description="verdicts at one threshold before it moves")
    threshold_step: float = Field(0.05, gt=0.0, le=1.0, description="how far one move of the threshold goes")
    max_threshold: float = Field(0.99, gt=0.0, le=1.0, description="the threshold never rises past this")
    recalibrate: bool = Field(True, description="move the threshold (`false`: count verdicts only)")
    judge_threshold: float = Field(0.5, ge=0.0, le=1.0,
                                   description="the cache judge's P(same answer) at or over which a verdict is 'same'")
    max_pairs: int = Field(1000, ge=0, description="labelled pairs kept per consenting tenant, for retraining")
    refresh_s: float = Field(5.0, gt=0.0, description="how often lookups' copy of the thresholds is refreshed")
    raise_when: Literal["lower", "upper"] = Field(
        "lower", description="which one-sided 95% bound over the maximum raises the threshold: `lower` (only when "
                             "the rate is clearly over) or `upper` (unless it is clearly under)")

    def resolved(self, calibrated_precision: float | None, fallback: float) -> ShadowSettings:
        """These settings with the maximum decided: as set, else the share of hits the verifier's
        calibration accepted as wrong, else `fallback` (the cache's own bound)."""
        if self.max_false_hit_rate is not None:
            return self
        rate = round(1.0 - calibrated_precision, 4) if calibrated_precision is not None else fallback
        return self.model_copy(update={"max_false_hit_rate": rate})


@dataclass(frozen=True)
class LiveEstimate:
    """A tenant's live false-hit estimate (see `costmesh.cache.v1.LiveFalseHitEstimate`)."""

    tenant_id: str
    verdicts: int = 0
    false_hits: int = 0
    total_verdicts: int = 0
    total_false_hits: int = 0
    threshold: float = 0.0
    calibrated_threshold: float = 0.0
    max_false_hit_rate: float = 0.0
    min_verdicts: int = 0
    threshold_moves: int = 0
    raise_when: str = "lower"  # the bound the threshold rises on (ShadowSettings.raise_when)

    @property
    def false_hit_rate(self) -> float:
        return false_hit_bound(self.false_hits, self.verdicts)[0]

    @property
    def upper_bound(self) -> float:
        return false_hit_bound(self.false_hits, self.verdicts, Z_ONE_SIDED_95)[1]

    @property
    def lower_bound(self) -> float:
        """The one-sided 95% Wilson lower bound (0 without verdicts)."""
        return wilson_lower(self.false_hit_rate, self.verdicts) if self.verdicts else 0.0

    @property
    def raise_bound(self) -> float:
        """The bound the threshold rises on: the upper one, or the lower one (`raise_when`)."""
        return self.lower_bound if self.raise_when == "lower" else self.upper_bound

    @property
    def over_bound(self) -> bool:
        """Enough verdicts at this threshold, and the bound it rises on over the maximum."""
        return self.verdicts >= self.min_verdicts and self.raise_bound > self.max_false_hit_rate


@dataclass(frozen=True)
class ShadowResult:
    """What `JudgeShadow` answers."""

    same: bool
    score: float  # the judge's P(same answer)
    judge: str    # "identical", "cross-encoder", "cosine" or "caller"
    judge_cost_usd: float
    live: LiveEstimate


Run = Callable[..., Awaitable]  # the core's guarded Redis call: run(operation, admin=...)


class ShadowLedger:
    """Per-tenant verdict counts, thresholds and labelled pairs in Redis.

    `calibrated`: the verifier's own threshold (None when the verifier has none to move: the
    cosine and rule verifiers; verdicts are then counted, and nothing moves)."""

    def __init__(self, client: Redis, run: Run, settings: ShadowSettings, *, prefix: str,
                 calibrated: float | None, calibrated_precision: float | None = None, fallback_rate: float = 0.05,
                 clock: Callable[[], float] = time.monotonic):
        """`calibrated_precision`: the verifier's precision at its operating point, on its calibration
        pairs; where `settings` leave the maximum unset, it is the share of hits the verifier accepted
        as wrong there (without a calibration, `fallback_rate`)."""
        self._client = client
        self._run = run
        self.settings = settings.resolved(calibrated_precision, fallback_rate)
        self._prefix = prefix
        self.calibrated = calibrated
        self._clock = clock
        self._record = client.register_script(_RECORD)
        self._thresholds: dict[str, tuple[float, float]] = {}  # tenant -> (threshold, read at)
        self._refreshing: dict[str, asyncio.Task] = {}

    def _key(self, tenant_id: str) -> str:
        return f"{self._prefix}:shadow:{tag_value(tenant_id)}"

    def _pairs_key(self, tenant_id: str) -> str:
        return f"{self._prefix}:shadow-pairs:{tag_value(tenant_id)}"

    @property
    def _tenants_key(self) -> str:
        return f"{self._prefix}:shadow-tenants"

    # -- lookups ------------------------------------------------------------------------

    def threshold_for(self, tenant_id: str) -> float | None:
        """The tenant's threshold for a lookup, without waiting: the local copy (refreshed in the
        background once older than `refresh_s`); None (the verifier's own) until it is read."""
        if self.calibrated is None:
            return None
        known = self._thresholds.get(tenant_id)
        if (known is None or self._clock() - known[1] >= self.settings.refresh_s) and tenant_id not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(tenant_id))
            self._refreshing[tenant_id] = task
            task.add_done_callback(lambda _t: self._refreshing.pop(tenant_id, None))
        return known[0] if known is not None else None

    async def _refresh(self, tenant_id: str) -> None:
        try:
            await self.estimate(tenant_id)
        except Exception as exc:  # noqa: BLE001 - the lookup keeps the threshold it had
            log.warning("shadow threshold not refreshed", error=str(exc))

    def _remember(self, estimate: LiveEstimate) -> LiveEstimate:
        if self.calibrated is not None:
            self._thresholds[estimate.tenant_id] = (estimate.threshold, self._clock())
        return estimate

    # -- verdicts -----------------------------------------------------------------------

    async def record(self, tenant_id: str, different: bool) -> LiveEstimate:
        """Count one verdict; the threshold moves when the estimate calls for it."""
        s = self.settings
        calibrated = self.calibrated if self.calibrated is not None else 0.0
        args = [int(different), int(s.recalibrate and self.calibrated is not None), repr(calibrated),
                repr(s.max_false_hit_rate), s.min_verdicts, repr(s.threshold_step),
                repr(max(s.max_threshold, calibrated)),
                repr(Z_ONE_SIDED_95), repr(LOWER_BELOW), repr(time.time()), s.raise_when]
        before = self._thresholds.get(tenant_id, (None, 0.0))[0]
        raw = await self._run(lambda: self._record(keys=[self._key(tenant_id)], args=args), admin=True)
        await self._run(lambda: self._client.sadd(self._tenants_key, tenant_id), admin=True)
        estimate = self._remember(self._estimate(tenant_id, _pairs_of(raw)))
        if before is not None and estimate.threshold != before:
            log.info("shadow checks moved the tenant's verifier threshold", tenant_id=tenant_id,
                     threshold=estimate.threshold, was=before, calibrated=calibrated)
        return estimate

    async def estimate(self, tenant_id: str) -> LiveEstimate:
        raw = await self._run(lambda: self._client.hgetall(self._key(tenant_id)), admin=True)
        return self._remember(self._estimate(tenant_id, raw))

    async def estimates(self, limit: int = MAX_TENANTS_LISTED) -> list[LiveEstimate]:
        """Every tenant with verdicts (at most `limit`), for the metrics."""
        tenants: list[str] = []

        async def members() -> None:
            async for member in self._client.sscan_iter(self._tenants_key, count=200):
                tenants.append(member.decode() if isinstance(member, bytes) else member)
                if len(tenants) >= limit:
                    break

        await self._run(members, admin=True)
        out = []
        for tenant_id in sorted(tenants):
            out.append(await self.estimate(tenant_id))
        return out

    def _estimate(self, tenant_id: str, raw: dict) -> LiveEstimate:
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in (raw or {}).items()}
        calibrated = self.calibrated if self.calibrated is not None else 0.0
        threshold = max(float(fields.get("threshold", calibrated)), calibrated)
        return LiveEstimate(
            tenant_id=tenant_id,
            verdicts=int(fields.get("verdicts", 0)),
            false_hits=int(fields.get("false_hits", 0)),
            total_verdicts=int(fields.get("total_verdicts", 0)),
            total_false_hits=int(fields.get("total_false_hits", 0)),
            threshold=threshold,
            calibrated_threshold=calibrated,
            max_false_hit_rate=self.settings.max_false_hit_rate,
            min_verdicts=self.settings.min_verdicts,
            threshold_moves=int(fields.get("moves", 0)),
            raise_when=self.settings.raise_when,
        )

    # -- labelled pairs -----------------------------------------------------------------

    async def keep_pair(self, tenant_id: str, pair: dict) -> None:
        """Keep a labelled pair (only called for tenants that consented), the newest `max_pairs`."""
        if self.settings.max_pairs <= 0:
            return
        line = json.dumps(pair, separators=(",", ":"))
        key = self._pairs_key(tenant_id)

        async def push() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, line)
                pipe.ltrim(key, 0, self.settings.max_pairs - 1)
                await pipe.execute()

        await self._run(push, admin=True)

    async def pairs(self, tenant_id: str) -> list[dict]:
        """The tenant's kept pairs, newest first."""
        raw = await self._run(lambda: self._client.lrange(self._pairs_key(tenant_id), 0, -1), admin=True)
        return [json.loads(line) for line in raw]

    async def aclose(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()


def _pairs_of(raw) -> dict:
    """HGETALL's reply from a script (a flat list) as a dict."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2]))
