"""Shadow checks of the router's cheap answers (issue 22), at the gateway: after an answer served
below the premium tier is returned, ask the premium model too, in the background, and have an LLM
judge say whether the cheap answer was as good.

Which answers: those of tenants that consented (`shadow_rate` in COSTMESH_ROUTER_TENANT_POLICIES;
off by default), routed by the cascade (model "auto", no max_tier cap, no tools offered), served as
text by a tier below the premium model's, drawn at the tenant's rate. The premium model (the
catalog's `premium_model`) gets the same request, pinned; a judge prompt
(`costmesh.judge_prompt.quality_prompt`: is the candidate as correct, complete and useful as the
reference, GOOD or WORSE) goes to COSTMESH_ROUTER_SHADOW_JUDGE_MODEL (default: the premium model)
through the router. Not the cache's cross-encoder: it was trained to tell whether two questions
ask the same thing, and a cheap answer can differ from the premium one and still be as good.

The verdict is counted in the tenant's routing ledger (`gateway.routing_quality`: the live quality
kept, its bound, the recalibrated threshold offset the classifier then applies), the judged row is
kept when the tenant consented to that too (`keep_shadow_rows`), and the premium call and the
judgement are billed to the tenant as their own cost line (`record_of_routing_check`, kind
"shadow", check "routing"). The answer never waits: the checks share the cache checks' bounds
(COSTMESH_GATEWAY_SHADOW_QUEUE, _CONCURRENCY, _TIMEOUT_S), each kind its own queue; a full queue
drops the check and counts it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry.metrics import Meter, Observation
from redis.asyncio import Redis

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.cost_records import CostRecord, CostRecorder, bound_key_id, record_of_routing_check
from costmesh.errors import ConfigError, CostmeshError
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.routing_quality import (
    TIERS,
    RoutingEstimate,
    RoutingLedger,
    RoutingQualitySettings,
    tiers_below,
)
from costmesh.gateway.routing_quality_metrics import register_quality_gauges
from costmesh.gateway.settings import GatewayConfig
from costmesh.gateway.shadow import BackgroundChecks, ShadowSettings
from costmesh.judge_prompt import MAX_ANSWER_CHARS, parse_quality_verdict, quality_prompt

log = structlog.get_logger()


@dataclass(frozen=True)
class RoutingCheckSettings:
    premium_model: str            # the reference: the catalog's premium model
    premium_tier: int             # its tier; answers served below it are checked
    judge_model: str              # COSTMESH_ROUTER_SHADOW_JUDGE_MODEL (default: the premium model)
    queue: int = 64               # as the cache checks' (COSTMESH_GATEWAY_SHADOW_QUEUE), a queue of their own
    concurrency: int = 2
    timeout_s: float = 120.0      # the premium call
    judge_timeout_s: float = 30.0


@dataclass(frozen=True)
class _Check:
    request: gw.CompleteRequest
    request_id: str
    cheap: str          # the answer served
    tier: str           # the tier that served it
    model: str
    score: float        # the classifier's score of the prompt
    key_id: str


def _tier_name(value: int) -> str:
    return common.Tier.Name(value).removeprefix("TIER_").lower() if value else ""


def _question(request: gw.CompleteRequest) -> str:
    for message in reversed(request.messages):
        if message.role == common.ROLE_USER:
            return "".join(part.text for part in message.content)
    return ""


class RoutingChecks(BackgroundChecks):
    """An `AnswerObserver` running shadow checks of cheap answers in the background; also what the
    pipeline asks for a tenant's threshold offset (`offset_for`) and live quality (`quality_pb`).

    `records`: where the check cost lines go (the gateway's cost recorder; None: none kept)."""

    kind = "routing check"

    def __init__(self, clients: MeshClients, ledger: RoutingLedger, settings: RoutingCheckSettings, *,
                 records: Callable[[CostRecord], None] | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(settings.queue, settings.concurrency)
        self._clients = clients
        self.ledger = ledger
        self.settings = settings
        self._records = records
        self._rng = rng or random.Random()
        self._clock = clock
        self.counters_by_verdict = {"as_good": 0, "worse": 0}

    # -- the pipeline's questions ---------------------------------------------------------

    def offset_for(self, tenant_id: str) -> float:
        return self.ledger.offset_for(tenant_id)

    async def quality_pb(self, tenant_id: str) -> gw.RoutingQuality | None:
        """The tenant's live routing quality for GetStats; None when it did not consent."""
        if self.ledger.settings.policy(tenant_id).shadow_rate <= 0:
            return None
        return routing_quality_pb(await self.ledger.estimate(tenant_id))

    # -- observing ------------------------------------------------------------------------

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        policy = self.ledger.settings.policy(request.tenant_id)
        if policy.shadow_rate <= 0 or response.cached or not response.tier:
            return
        routing = request.routing
        if routing.model or routing.max_tier or request.tools.tools:  # not the cascade's own choice
            return
        tier = _tier_name(response.tier)
        self.ledger.count_served(request.tenant_id, tier)  # the tier mix, checked or not
        if response.tier >= self.settings.premium_tier or response.model == self.settings.premium_model:
            return
        if not response.text.strip() or response.tool_calls or self._rng.random() >= policy.shadow_rate:
            return
        self.submit(_Check(request, response.request_id, response.text, tier, response.model,
                           response.complexity_score, bound_key_id()))

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        pass

    # -- checking -------------------------------------------------------------------------

    async def _check(self, check: _Check) -> None:
        request = check.request
        try:
            premium = await self._clients.execute(router_pb2.ExecuteRequest(
                messages=request.messages, sampling=request.sampling, model=self.settings.premium_model,
                tenant_id=request.tenant_id, response_format=request.response_format,
            ), self.settings.timeout_s)
        except CostmeshError as exc:
            self.counters.failed += 1
            log.warning("routing check: the premium call failed", error=str(exc), request_id=check.request_id)
            return
        verdict, judge_usd = "", 0.0
        if premium.text.strip():
            verdict, judge_usd = await self._judged(check, premium.text)
        record = record_of_routing_check(request, check.request_id, premium, judge_usd, verdict, self._clock(),
                                         check.key_id, checked_tier=check.tier, score=check.score)
        self.counters.cost_usd += record.cost_usd
        if self._records is not None:
            self._records(record)
        if verdict:
            await self._count(check, verdict, premium.text)
        log.info("routing check", request_id=check.request_id, tier=check.tier, verdict=verdict or "unjudged",
                 cost_usd=round(record.cost_usd, 8))

    async def _judged(self, check: _Check, premium: str) -> tuple[str, float]:
        """("as_good" | "worse" | "" when not judged, what judging cost)."""
        prompt = quality_prompt(_question(check.request), check.cheap, premium)
        try:
            reply = await self._clients.execute(router_pb2.ExecuteRequest(
                messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=prompt)])],
                sampling=common.SamplingParams(temperature=0.0, max_tokens=8),
                model=self.settings.judge_model, tenant_id=check.request.tenant_id,
            ), self.settings.judge_timeout_s)
        except CostmeshError as exc:
            self.counters.failed += 1
            log.warning("routing check: not judged", error=str(exc), request_id=check.request_id)
            return "", 0.0
        verdict = parse_quality_verdict(reply.text)
        if verdict is None:
            self.counters.failed += 1
            log.warning("routing check: the judge answered neither GOOD nor WORSE", reply=reply.text[:80],
                        request_id=check.request_id)
            return "", reply.cost.total_usd
        self.counters.done += 1
        self.counters_by_verdict[verdict] += 1
        if verdict == "as_good":
            self.counters.same += 1
        else:
            self.counters.different += 1
        return verdict, reply.cost.total_usd

    async def _count(self, check: _Check, verdict: str, premium: str) -> None:
        """The verdict into the tenant's ledger (its estimate, its threshold) and, with consent, its row."""
        tenant = check.request.tenant_id
        try:
            await self.ledger.record(tenant, check.tier, verdict == "as_good")
            if self.ledger.settings.policy(tenant).keep_shadow_rows:
                await self.ledger.keep_row(tenant, {
                    "prompt": _question(check.request), "tier": check.tier, "model": check.model,
                    "score": check.score, "as_good": verdict == "as_good", "premium_model": self.settings.premium_model,
                    "weak_response": check.cheap[:MAX_ANSWER_CHARS], "strong_response": premium[:MAX_ANSWER_CHARS],
                    "ts": self._clock(),
                })
        except Exception as exc:  # noqa: BLE001 - Redis down: the verdict is billed and logged, not counted
            self.counters.failed += 1
            log.warning("routing check: verdict not counted", error=str(exc), request_id=check.request_id)

    async def aclose(self, grace_s: float = 5.0) -> None:
        await super().aclose(grace_s)
        await self.ledger.aclose()


def routing_quality_pb(estimate: RoutingEstimate) -> gw.RoutingQuality:
    out = gw.RoutingQuality(
        tenant_id=estimate.tenant_id, quality_retained=estimate.quality_retained, lower_bound=estimate.lower_bound,
        target=estimate.target, verdicts=estimate.verdicts, min_verdicts=estimate.min_verdicts,
        threshold_offset=estimate.offset, threshold_moves=estimate.moves, shadow_rate=estimate.shadow_rate,
    )
    for name in TIERS:
        counts = estimate.tiers.get(name)
        if counts is None or not (counts.served or counts.total_verdicts):
            continue
        out.tiers.append(gw.TierQuality(
            tier=common.Tier.Value(f"TIER_{name.upper()}"), verdicts=counts.verdicts, as_good=counts.as_good,
            quality_retained=counts.quality_retained, lower_bound=counts.lower_bound,
            total_verdicts=counts.total_verdicts, total_as_good=counts.total_as_good, served=counts.served,
        ))
    return out


def register_metrics(meter: Meter, checks: RoutingChecks) -> None:
    """costmesh_gateway_routing_checks_total{outcome}: queued, dropped (queue full), judged, failed;
    costmesh_gateway_routing_check_verdicts_total{verdict}: as_good, worse;
    costmesh_gateway_routing_check_cost_usd_total."""
    c, verdicts = checks.counters, checks.counters_by_verdict
    meter.create_observable_counter(
        "costmesh.gateway.routing_checks", [lambda _o: [
            Observation(c.queued, {"outcome": "queued"}), Observation(c.dropped, {"outcome": "dropped"}),
            Observation(c.done, {"outcome": "judged"}), Observation(c.failed, {"outcome": "failed"})]],
        unit="{check}", description="shadow checks of the router's cheap answers, by outcome")
    meter.create_observable_counter(
        "costmesh.gateway.routing_check_verdicts", [lambda _o: [
            Observation(count, {"verdict": verdict}) for verdict, count in verdicts.items()]],
        unit="{verdict}", description="the routing checks' verdicts (this replica's; the ledger counts all replicas')")
    meter.create_observable_counter(
        "costmesh.gateway.routing_check_cost", [lambda _o: [Observation(c.cost_usd)]], unit="usd",
        description="what the routing checks and their judgements cost (billed to the tenants)")


async def routing_checks(runtime: Any, clients: MeshClients, observers: Sequence[Any],
                         cleanup: contextlib.AsyncExitStack) -> RoutingChecks | None:
    """The gateway's routing checks (settings from `runtime.env`), billing to the cost recorder among
    `observers` (when records are kept), counted on `runtime.meter`; None when no tenant consented.
    A tenant that consented needs Redis (REDIS_URL): ConfigError at start without it."""
    env: Env = runtime.env
    settings = RoutingQualitySettings.load(env)
    if not settings.any_consent:
        return None
    url = GatewayConfig.load(env).redis_url
    if not url:
        raise ConfigError("COSTMESH_ROUTER_TENANT_POLICIES gives tenants a shadow_rate: the gateway needs "
                          "REDIS_URL to count their verdicts")
    catalog = load_catalog(runtime.settings.catalog)
    premium = catalog.premium
    queue = ShadowSettings.load(env)
    check_settings = RoutingCheckSettings(
        premium_model=premium.id, premium_tier=int(premium.tier),
        judge_model=settings.judge_model or premium.id,
        queue=queue.queue, concurrency=queue.concurrency, timeout_s=queue.timeout_s,
        judge_timeout_s=queue.judge_timeout_s,
    )
    catalog.model(check_settings.judge_model)  # an unknown judge model fails at start
    redis = Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    cleanup.push_async_callback(redis.aclose)
    ledger = RoutingLedger(redis, settings, cheap_tiers=tiers_below(check_settings.premium_tier))
    recorder = next((o for o in observers if isinstance(o, CostRecorder)), None)
    checks = RoutingChecks(clients, ledger, check_settings, records=recorder.write if recorder else None)
    register_metrics(runtime.meter, checks)
    gauges = register_quality_gauges(runtime, ledger)
    cleanup.callback(gauges.close)
    runtime.log.info("routing checks on", tenants=sorted(t for t, p in settings.policies.items() if p.shadow_rate > 0),
                     premium_model=premium.id, judge_model=check_settings.judge_model, target=settings.target,
                     min_verdicts=settings.min_verdicts)
    return checks
