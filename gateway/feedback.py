"""Feedback (issue 22): the application reports a bad answer by its request id.

The gateway remembers, for every answer it served from the cache, its request id -> (tenant, the
entry served, whether it was a semantic hit, its similarity, the question) for a bounded time:
in Redis with a TTL when the gateway has REDIS_URL (every replica agrees, restarts lose nothing),
else in a bounded LRU of this process. A report (`GatewayService.ReportFeedback`, `POST
/v1/feedback`) then

- removes the entry (`CacheService.Invalidate`): no one is served it again;
- for a semantic hit, counts the report as a "different" verdict in the tenant's live false-hit
  estimate (`CacheService.JudgeShadow` with the caller's verdict, before the entry is removed so
  that a tenant keeping its shadow pairs keeps this one too). A tenant that did not consent to
  shadow checks has no estimate: its entry is removed and nothing is counted.

An answer a cheap model gave (routed by the cascade below the premium model's tier, not from the
cache) is remembered too, for tenants that consented to the router's shadow checks
(`shadow_rate` in COSTMESH_ROUTER_TENANT_POLICIES): a report on it counts as a WORSE verdict of its
tier in the tenant's routing ledger (`gateway.routing_quality`: the live quality retained, its
bound, the threshold offset it moves), as a routing check's would. Nothing is removed from the
cache for it. Other answers the model gave (the premium tier, a pinned model, a max_tier cap,
tools offered, or a tenant without that consent) are not remembered.

Only the reporting tenant's own requests are found (the key holds the tenant); an unknown,
expired or already reported request id is `NotFound`.

Env: COSTMESH_GATEWAY_FEEDBACK_TTL_S (how long a request can be reported, 86400),
COSTMESH_GATEWAY_FEEDBACK_MAX (requests remembered in process without Redis, 10000),
COSTMESH_ROUTER_SHADOW_PREFIX (the Redis key prefix, `costmesh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.config import Env
from costmesh.errors import CostmeshError, InvalidRequest, NotFound, PermissionDenied, Unavailable
from costmesh.gateway.cache_answers import cache_scope
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.routing_quality import RoutingLedger, RoutingQualitySettings, tiers_below
from costmesh.gateway.settings import GatewayConfig
from costmesh.gateway.shadow import _hit_key, _question
from costmesh.server_settings import ServerSettings
from costmesh.settings import Settings

log = structlog.get_logger()
_HITS = {cache_pb2.HIT_KIND_EXACT: gw.CACHE_STATUS_EXACT_HIT, cache_pb2.HIT_KIND_SEMANTIC: gw.CACHE_STATUS_SEMANTIC_HIT}
MAX_QUESTION_CHARS = 4000  # of the question kept with a semantic hit (for the labelled pair)
MAX_REQUEST_ID_CHARS = 256


class FeedbackSettings(Settings):
    """Bad answers reported by request id."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_GATEWAY_FEEDBACK_")
    used_by: ClassVar[str] = "gateway"

    ttl_s: float = Field(86400.0, gt=0.0, description="how long an answer can be reported bad by request id (in "
                         "Redis with `REDIS_URL`, keys under `COSTMESH_ROUTER_SHADOW_PREFIX`)")
    max_remembered: int = Field(10_000, ge=1, validation_alias="COSTMESH_GATEWAY_FEEDBACK_MAX",
                                description="answers remembered in process without Redis")
    timeout_s: float = Field(5.0, gt=0.0, description="the deadline of each call a report makes")
    prefix: str = Field("costmesh", min_length=1, validation_alias="COSTMESH_ROUTER_SHADOW_PREFIX",
                        description="the prefix of the Redis keys of the routing checks and the feedback")


@dataclass(frozen=True)
class RoutedAnswers:
    """What a report on a cheap model's answer needs: the routing ledger it counts in, and the
    premium model (its answers, and those of its tier or above, are not the router's to count)."""

    ledger: RoutingLedger
    premium_model: str
    premium_tier: int

    def counts(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> bool:
        """An answer the cascade chose below the premium tier for a tenant that consented (as the
        routing checks draw theirs)."""
        if response.cached or not response.tier or self.ledger.settings.policy(request.tenant_id).shadow_rate <= 0:
            return False
        routing = request.routing
        if routing.model or routing.max_tier or request.tools.tools:  # not the cascade's own choice
            return False
        return response.tier < self.premium_tier and response.model != self.premium_model


class AnswerMemory(Protocol):
    """request (tenant, id) -> what answered it, for a bounded time."""

    async def put(self, tenant: str, request_id: str, served: dict[str, Any]) -> None: ...

    async def get(self, tenant: str, request_id: str) -> dict[str, Any] | None: ...

    async def take(self, tenant: str, request_id: str) -> bool:
        """Forget it; False when it was already gone (another report took it)."""
        ...


class LocalMemory:
    """A bounded LRU of this process, each entry kept at most `ttl_s`."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic):
        self._ttl_s, self._max, self._clock = ttl_s, max_entries, clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    async def put(self, tenant: str, request_id: str, served: dict[str, Any]) -> None:
        self._entries[(tenant, request_id)] = (self._clock() + self._ttl_s, served)
        self._entries.move_to_end((tenant, request_id))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def get(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        found = self._entries.get((tenant, request_id))
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._entries[(tenant, request_id)]
            return None
        return found[1]

    async def take(self, tenant: str, request_id: str) -> bool:
        return self._entries.pop((tenant, request_id), None) is not None


class RedisMemory:
    """One key per request, `{prefix}:feedback:{tenant digest}:{request id}`, expiring after `ttl_s`."""

    def __init__(self, redis: Redis, ttl_s: float, prefix: str = "costmesh"):
        self._redis, self._ttl_ms, self._prefix = redis, max(1, int(ttl_s * 1000)), prefix

    def _key(self, tenant: str, request_id: str) -> str:
        """The tenant as a digest (no separator in it: no two (tenant, id) pairs share a key)."""
        return f"{self._prefix}:feedback:{hashlib.sha256(tenant.encode()).hexdigest()[:24]}:{request_id}"

    async def put(self, tenant: str, request_id: str, served: dict[str, Any]) -> None:
        await self._redis.set(self._key(tenant, request_id), json.dumps(served), px=self._ttl_ms)

    async def get(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key(tenant, request_id))
        served = None if raw is None else json.loads(raw)
        return served if served is not None and served.get("tenant") == tenant else None

    async def take(self, tenant: str, request_id: str) -> bool:
        return bool(await self._redis.delete(self._key(tenant, request_id)))


class Feedback:
    """An `AnswerObserver` (and lookup observer) remembering the answers served from the cache, and
    what `ReportFeedback` asks."""

    def __init__(self, clients: MeshClients, memory: AnswerMemory, settings: FeedbackSettings | None = None,
                 routed: RoutedAnswers | None = None):
        """`routed`: where reports on cheap models' answers count (None: no tenant consented to
        routing checks; such answers are not remembered)."""
        self._clients = clients
        self._memory = memory
        self.settings = settings or FeedbackSettings()
        self._routed = routed
        self._hits: OrderedDict[bytes, cache_pb2.LookupResponse] = OrderedDict()
        self._writes: set[asyncio.Task] = set()
        self.counters = {"remembered": 0, "reported": 0, "counted": 0, "not_found": 0, "lost": 0}

    # -- observing ------------------------------------------------------------------------

    def seen_lookup(self, request: cache_pb2.LookupRequest, response: cache_pb2.LookupResponse) -> None:
        if response.kind not in _HITS or not response.entry_id:
            return
        self._hits[_hit_key(request.scope, request.messages, request.sampling)] = response
        while len(self._hits) > 1024:  # hits whose answer was never seen (the request failed after)
            self._hits.popitem(last=False)

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        if not response.cached:
            self._routed_answer(request, response)
            return
        if not self._hits:
            return
        lookup = self._hits.pop(_hit_key(cache_scope(request), request.messages, request.sampling), None)
        if lookup is None or not response.request_id or len(response.request_id) > MAX_REQUEST_ID_CHARS:
            return
        served = {"tenant": request.tenant_id, "entry_id": lookup.entry_id, "cache_status": int(_HITS[lookup.kind]),
                  "similarity": round(lookup.similarity, 6), "ts": round(time.time(), 3)}
        if lookup.kind == cache_pb2.HIT_KIND_SEMANTIC:
            served["question"] = _question(request)[:MAX_QUESTION_CHARS]
        task = asyncio.get_running_loop().create_task(self._remember(request.tenant_id, response.request_id, served))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _routed_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        if self._routed is None or not self._routed.counts(request, response):
            return
        if not response.request_id or len(response.request_id) > MAX_REQUEST_ID_CHARS:
            return
        served = {"tenant": request.tenant_id, "routed_tier": common.Tier.Name(response.tier).removeprefix(
            "TIER_").lower(), "model": response.model, "ts": round(time.time(), 3)}
        task = asyncio.get_running_loop().create_task(self._remember(request.tenant_id, response.request_id, served))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        pass

    async def _remember(self, tenant: str, request_id: str, served: dict[str, Any]) -> None:
        try:
            await self._memory.put(tenant, request_id, served)
            self.counters["remembered"] += 1
        except (RedisError, OSError) as exc:
            self.counters["lost"] += 1
            log.warning("feedback: the answer could not be remembered", error=type(exc).__name__,
                        request_id=request_id)

    async def settled(self) -> None:
        """Wait for the writes in flight (a report right after its answer finds it)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def aclose(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled(), 5.0)

    # -- reporting ------------------------------------------------------------------------

    async def report(self, tenant: str, request_id: str, reason: str = "") -> gw.ReportFeedbackResponse:
        """Remove the entry that answered `tenant`'s request `request_id`, and count a semantic hit
        as a false hit. NotFound: unknown, expired, already reported (or another tenant's)."""
        request_id = request_id.strip()
        if not request_id:
            raise InvalidRequest("request_id: required")
        if len(request_id) > MAX_REQUEST_ID_CHARS:
            raise InvalidRequest(f"request_id: at most {MAX_REQUEST_ID_CHARS} characters")
        await self.settled()
        try:
            served = await self._memory.get(tenant, request_id)
        except (RedisError, OSError) as exc:
            raise Unavailable(f"feedback: Redis is unreachable ({type(exc).__name__})") from exc
        if served is None:
            self.counters["not_found"] += 1
            raise NotFound(f"request_id: {request_id!r} is unknown, expired, already reported, "
                           "or was not answered from the cache or by a cheap model of a consenting tenant")
        if "routed_tier" in served:
            return await self._report_routed(tenant, request_id, served, reason)
        semantic = served.get("cache_status") == gw.CACHE_STATUS_SEMANTIC_HIT
        counted = bool(served.get("counted"))  # a retry after the removal failed: counted already
        if semantic and not counted:
            counted = await self._count(tenant, request_id, served)
        try:
            removed = await self._clients.invalidate(
                cache_pb2.InvalidateRequest(tenant_id=tenant, entry_id=served["entry_id"]), self.settings.timeout_s)
        except CostmeshError:
            if counted:  # kept for a retry, which removes the entry without counting again
                with contextlib.suppress(RedisError, OSError):
                    await self._memory.put(tenant, request_id, {**served, "counted": True})
            raise
        with contextlib.suppress(RedisError, OSError):
            await self._memory.take(tenant, request_id)
        self.counters["reported"] += 1
        self.counters["counted"] += int(counted)
        log.info("feedback: bad answer reported", request_id=request_id, entry_id=served["entry_id"],
                 semantic=semantic, counted=counted, removed=removed.removed, reason=reason[:200] or None)
        return gw.ReportFeedbackResponse(request_id=request_id, cache_status=served.get("cache_status", 0),
                                         entries_removed=removed.removed, verdict_counted=counted)

    async def _report_routed(self, tenant: str, request_id: str, served: dict[str, Any],
                             reason: str) -> gw.ReportFeedbackResponse:
        """A cheap model's answer reported bad: a WORSE verdict of its tier in the routing ledger."""
        if self._routed is None:  # remembered by a replica that counts them; this one cannot
            raise Unavailable("feedback: this gateway does not count reports on routed answers")
        try:
            if not await self._memory.take(tenant, request_id):  # another report took it first
                raise NotFound(f"request_id: {request_id!r} is already reported")
        except (RedisError, OSError) as exc:
            raise Unavailable(f"feedback: Redis is unreachable ({type(exc).__name__})") from exc
        try:
            estimate = await self._routed.ledger.record(tenant, served["routed_tier"], False)
        except (RedisError, OSError) as exc:
            with contextlib.suppress(RedisError, OSError):  # kept for a retry
                await self._memory.put(tenant, request_id, served)
            raise Unavailable(f"feedback: the verdict could not be counted ({type(exc).__name__})") from exc
        self.counters["reported"] += 1
        self.counters["counted"] += 1
        log.info("feedback: bad routed answer reported", request_id=request_id, tier=served["routed_tier"],
                 model=served.get("model"), quality_lower_bound=round(estimate.lower_bound, 4),
                 offset=estimate.offset, reason=reason[:200] or None)
        return gw.ReportFeedbackResponse(request_id=request_id, cache_status=gw.CACHE_STATUS_MISS,
                                         entries_removed=0, verdict_counted=True)

    async def _count(self, tenant: str, request_id: str, served: dict[str, Any]) -> bool:
        """The report as a "different" verdict; False when the tenant has no estimate (no consent)."""
        question = served.get("question") or ""
        if not question.strip():
            return False
        try:
            await self._clients.judge_shadow(cache_pb2.JudgeShadowRequest(
                scope=cache_pb2.Scope(tenant_id=tenant), entry_id=served["entry_id"],
                messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=question)])],
                verdict=cache_pb2.SHADOW_VERDICT_DIFFERENT, similarity=served.get("similarity", 0.0),
            ), self.settings.timeout_s)
        except PermissionDenied:  # no consent to shadow checks: no live estimate to count in
            return False
        except CostmeshError as exc:
            log.warning("feedback: verdict not counted", error=str(exc), request_id=request_id)
            return False
        return True


def feedback(runtime: Any, clients: MeshClients, cleanup: contextlib.AsyncExitStack) -> Feedback:
    """The gateway's feedback: in Redis when it has REDIS_URL, else in process; watches `clients`' lookups."""
    env: Env = runtime.env
    settings = FeedbackSettings.load(env)
    url = GatewayConfig.load(env).redis_url
    if url:
        redis = Redis.from_url(url, socket_timeout=settings.timeout_s, socket_connect_timeout=settings.timeout_s)
        cleanup.push_async_callback(redis.aclose)
        memory: AnswerMemory = RedisMemory(redis, settings.ttl_s, settings.prefix)
    else:
        memory = LocalMemory(settings.ttl_s, settings.max_remembered)
    out = Feedback(clients, memory, settings, routed=_routed_answers(env, cleanup))
    clients.lookup_observers.append(out.seen_lookup)
    return out


def _routed_answers(env: Env, cleanup: contextlib.AsyncExitStack) -> RoutedAnswers | None:
    """The routing ledger reports on cheap answers count in: None when no tenant consented to routing
    checks (or without Redis, which the routing checks then refuse at start)."""
    routing = RoutingQualitySettings.load(env)
    url = GatewayConfig.load(env).redis_url
    if not routing.any_consent or not url:
        return None
    from costmesh.catalog import load_catalog

    premium = load_catalog(ServerSettings.load(env).catalog).premium
    redis = Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    cleanup.push_async_callback(redis.aclose)
    ledger = RoutingLedger(redis, routing, cheap_tiers=tiers_below(int(premium.tier)))
    cleanup.push_async_callback(ledger.aclose)
    return RoutedAnswers(ledger, premium.id, int(premium.tier))
