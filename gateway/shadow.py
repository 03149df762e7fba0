"""Shadow checks of semantic cache hits (issue 22), at the gateway: after a hit is served, ask the
model too, in the background, and have a judge say whether the two answers agree.

The cache draws the hits to check (its tenant policies hold each tenant's consent and share,
`shadow_rate`; off by default) and flags them in `LookupResponse.shadow`; `ShadowChecks` sees
the lookups (`MeshClients.lookup_observers`) and, as an `AnswerObserver`, the answers. When a
flagged hit has been answered it queues a check: the same request classified and executed by the
router (nothing the user sees changes, and the answer never waits for it), then judged:

- `cache` (default): the cache's cross-encoder reads the two answers (`CacheService.JudgeShadow`);
- `llm`: a judge prompt to a configured model through the router (`costmesh.judge_prompt`), its
  verdict then handed to `JudgeShadow`, which counts it either way.

The cache counts the verdict toward the tenant's live false-hit estimate and moves its verifier
threshold. The call and the judgement are billed to the tenant as their own cost line
(`costmesh.cost_records.record_of_shadow`, kind "shadow").

Bounded: at most `queue` checks wait and `concurrency` run at once; a check that finds the queue
full is dropped and counted. Env: COSTMESH_GATEWAY_SHADOW_QUEUE (64), _CONCURRENCY (2),
_TIMEOUT_S (120: the model call), _JUDGE (cache | llm), _JUDGE_MODEL (the llm judge's catalog model).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import structlog
from opentelemetry.metrics import Meter, Observation
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.cost_records import CostRecord, CostRecorder, bound_key_id, record_of_shadow
from costmesh.errors import ConfigError, CostmeshError, UpstreamError
from costmesh.gateway.background_queue import BackgroundQueue
from costmesh.gateway.cache_answers import cache_scope
from costmesh.gateway.clients import MeshClients
from costmesh.judge_prompt import judge_prompt, parse_verdict
from costmesh.settings import Settings

log = structlog.get_logger()
_VERDICTS = {"same": cache_pb2.SHADOW_VERDICT_SAME, "different": cache_pb2.SHADOW_VERDICT_DIFFERENT}


class ShadowSettings(Settings):
    """The gateway's side of the shadow checks (of cache hits, and the queue the routing checks share)."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_GATEWAY_SHADOW_")
    used_by: ClassVar[str] = "gateway"

    queue: int = Field(64, ge=1, description="shadow checks waiting at most; more are dropped (and counted)")
    concurrency: int = Field(2, ge=1, description="shadow checks running at once")
    timeout_s: float = Field(120.0, gt=0.0, description="the deadline of a check's model call")
    judge: Literal["cache", "llm"] = Field("cache", description="`cache` (its cross-encoder over the two "
                                          "answers) or `llm` (a judge prompt to `_JUDGE_MODEL`)")
    judge_model: str = Field("", description="the llm judge's catalog model")
    judge_timeout_s: float = Field(30.0, gt=0.0, description="the deadline of a judgement")
    remembered: int = Field(256, ge=1, description="hits drawn for a check, kept until their answer is seen")

    @model_validator(mode="after")
    def _llm_needs_a_model(self) -> ShadowSettings:
        if self.judge == "llm" and not self.judge_model:
            raise ConfigError("COSTMESH_GATEWAY_SHADOW_JUDGE=llm needs COSTMESH_GATEWAY_SHADOW_JUDGE_MODEL")
        return self


@dataclass
class ShadowCounters:
    queued: int = 0     # hits drawn by the cache, answered, queued for a check
    dropped: int = 0    # the queue was full
    done: int = 0       # checked and judged
    failed: int = 0     # the model call or the judgement failed
    same: int = 0
    different: int = 0
    cost_usd: float = 0.0  # what the checks and judgements cost


@dataclass(frozen=True)
class _Check:
    request: gw.CompleteRequest
    request_id: str
    served: str
    lookup: cache_pb2.LookupResponse
    key_id: str


class Judge(Protocol):
    """Decides a pair before `JudgeShadow` counts it: (verdict, what deciding cost). Verdict
    UNSPECIFIED: the cache's own judge decides."""

    name: str

    async def decide(self, check: _Check, question: str, fresh: str) -> tuple[int, float]: ...


class CacheJudge:
    """The cache's cross-encoder, inside JudgeShadow."""

    name = "cache"

    async def decide(self, check: _Check, question: str, fresh: str) -> tuple[int, float]:
        return cache_pb2.SHADOW_VERDICT_UNSPECIFIED, 0.0


class LlmJudge:
    """A judge prompt to `model` through the router (pinned, temperature 0, a few tokens)."""

    name = "llm"

    def __init__(self, clients: MeshClients, model: str, timeout_s: float):
        self._clients = clients
        self._model = model
        self._timeout_s = timeout_s

    async def decide(self, check: _Check, question: str, fresh: str) -> tuple[int, float]:
        prompt = judge_prompt(question, check.served, fresh)
        reply = await self._clients.execute(router_pb2.ExecuteRequest(
            messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=prompt)])],
            sampling=common.SamplingParams(temperature=0.0, max_tokens=8),
            model=self._model, tenant_id=check.request.tenant_id,
        ), self._timeout_s)
        verdict = parse_verdict(reply.text)
        if verdict is None:
            raise _Unjudged(f"the llm judge answered neither SAME nor DIFFERENT: {reply.text[:80]!r}",
                            reply.cost.total_usd)
        return _VERDICTS[verdict], reply.cost.total_usd


class _Unjudged(UpstreamError):
    def __init__(self, message: str, cost_usd: float):
        super().__init__(message)
        self.cost_usd = cost_usd


def _hit_key(scope: cache_pb2.Scope, messages: Sequence[common.Message], sampling: common.SamplingParams) -> bytes:
    """What ties a lookup to the answer it gave: its request, as the pipeline builds it."""
    lookup = cache_pb2.LookupRequest(scope=scope, messages=messages, sampling=sampling)
    return hashlib.sha256(lookup.SerializeToString(deterministic=True)).digest()


def _question(request: gw.CompleteRequest) -> str:
    for message in reversed(request.messages):
        if message.role == common.ROLE_USER:
            return "".join(part.text for part in message.content)
    return ""


class BackgroundChecks(BackgroundQueue[Any]):
    """Checks run in the background, off the answer's path: at most `queue` wait and `concurrency`
    run at once; one that finds the queue full is dropped and counted. Subclasses define `_check`
    (the cache hits' checks here, the router's cheap answers' in `gateway.routing_shadow`)."""

    kind = "shadow check"

    def __init__(self, queue: int, concurrency: int):
        super().__init__(queue, concurrency)
        self.name = self.kind.replace(" ", "-")
        self.counters = ShadowCounters()

    def _queued(self, check: Any) -> None:
        self.counters.queued += 1

    def _dropped(self, check: Any) -> None:
        self.counters.dropped += 1
        log.warning(f"{self.kind} queue full; check dropped", pending=self.pending)

    def _crashed(self, check: Any, exc: Exception) -> None:
        self.counters.failed += 1
        log.error(f"{self.kind} failed", error=repr(exc))

    async def _handle(self, check: Any) -> None:
        await self._check(check)

    async def _check(self, check: Any) -> None:
        raise NotImplementedError

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait (at most `timeout_s`) until every queued check has run."""
        await super().drain(timeout_s)

    async def aclose(self, grace_s: float = 5.0) -> int:
        """Run what is queued within `grace_s`, then stop; checks still queued are dropped."""
        return await super().aclose(grace_s)


class ShadowChecks(BackgroundChecks):
    """An `AnswerObserver` (and lookup observer) running shadow checks in the background.

    `records`: where the shadow cost lines go (the gateway's cost recorder; None: none kept)."""

    def __init__(self, clients: MeshClients, settings: ShadowSettings, *,
                 records: Callable[[CostRecord], None] | None = None, judge: Judge | None = None,
                 fallback_tier: int = common.TIER_MODERATE, clock: Callable[[], float] = time.time):
        super().__init__(settings.queue, settings.concurrency)
        self._clients = clients
        self.settings = settings
        self._records = records
        self._judge = judge or (LlmJudge(clients, settings.judge_model, settings.judge_timeout_s)
                                if settings.judge == "llm" else CacheJudge())
        self._fallback_tier = fallback_tier
        self._clock = clock
        self._drawn: OrderedDict[bytes, cache_pb2.LookupResponse] = OrderedDict()

    # -- observing ------------------------------------------------------------------------

    def seen_lookup(self, request: cache_pb2.LookupRequest, response: cache_pb2.LookupResponse) -> None:
        """Remember a semantic hit the cache drew for a check, until its answer is seen."""
        if response.kind != cache_pb2.HIT_KIND_SEMANTIC or not response.shadow:
            return
        self._drawn[_hit_key(request.scope, request.messages, request.sampling)] = response
        while len(self._drawn) > self.settings.remembered:
            self._drawn.popitem(last=False)

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        if response.cache_status != gw.CACHE_STATUS_SEMANTIC_HIT or not self._drawn:
            return
        lookup = self._drawn.pop(_hit_key(cache_scope(request), request.messages, request.sampling), None)
        if lookup is None or not lookup.text.strip() or lookup.tool_calls:  # text answers only
            return
        self.submit(_Check(request, response.request_id, lookup.text, lookup, bound_key_id()))

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        pass

    # -- checking -------------------------------------------------------------------------

    async def _check(self, check: _Check) -> None:
        try:
            fresh = await self._clients.execute(await self._execute_request(check), self.settings.timeout_s)
        except CostmeshError as exc:
            self.counters.failed += 1
            log.warning("shadow check: the model call failed", error=str(exc), request_id=check.request_id)
            return
        verdict, judge_usd = "", 0.0
        if fresh.text.strip():
            verdict, judge_usd = await self._judged(check, fresh.text)
        record = record_of_shadow(check.request, check.request_id, fresh, judge_usd, verdict, self._clock(),
                                  check.key_id, check.lookup.similarity)
        self.counters.cost_usd += record.cost_usd
        if self._records is not None:
            self._records(record)
        log.info("shadow check", request_id=check.request_id, verdict=verdict or "unjudged",
                 cost_usd=round(record.cost_usd, 8), judge=self._judge.name)

    async def _judged(self, check: _Check, fresh: str) -> tuple[str, float]:
        """("same" | "different" | "" when not judged, what judging cost)."""
        question = _question(check.request)
        cost = 0.0
        try:
            decided, cost = await self._judge.decide(check, question, fresh)
            judged = await self._clients.judge_shadow(cache_pb2.JudgeShadowRequest(
                scope=cache_scope(check.request), entry_id=check.lookup.entry_id, messages=check.request.messages,
                served_text=check.served, fresh_text=fresh, verdict=decided, similarity=check.lookup.similarity,
            ), self.settings.judge_timeout_s)
        except CostmeshError as exc:
            self.counters.failed += 1
            log.warning("shadow check: not judged", error=str(exc), request_id=check.request_id)
            return "", cost + getattr(exc, "cost_usd", 0.0)
        self.counters.done += 1
        if judged.verdict == cache_pb2.SHADOW_VERDICT_DIFFERENT:
            self.counters.different += 1
            return "different", cost + judged.judge_cost_usd
        self.counters.same += 1
        return "same", cost + judged.judge_cost_usd

    async def _execute_request(self, check: _Check) -> router_pb2.ExecuteRequest:
        """The request as the pipeline would have routed it on a miss (classified, tier bounds kept)."""
        request, routing = check.request, check.request.routing
        execute = router_pb2.ExecuteRequest(
            messages=request.messages, sampling=request.sampling, max_tier=routing.max_tier, model=routing.model,
            tenant_id=request.tenant_id, tools=request.tools, response_format=request.response_format,
        )
        if routing.model:
            return execute
        try:
            classified = await self._clients.classify(
                classifier_pb2.ClassifyRequest(messages=request.messages, embedding=check.lookup.embedding),
                self.settings.judge_timeout_s)
            tier, score = classified.tier, classified.score
        except CostmeshError:
            tier, score = self._fallback_tier, 0.5
        execute.tier = max(tier, routing.min_tier) if routing.min_tier else tier
        if routing.max_tier:
            execute.tier = min(execute.tier, routing.max_tier)
        execute.score = score
        return execute


def register_metrics(meter: Meter, checks: ShadowChecks) -> None:
    """costmesh_gateway_shadow_checks_total{outcome}: queued, dropped (queue full), judged, failed;
    costmesh_gateway_shadow_verdicts_total{verdict}: same, different; costmesh_gateway_shadow_cost_usd_total."""
    c = checks.counters
    meter.create_observable_counter(
        "costmesh.gateway.shadow_checks", [lambda _o: [
            Observation(c.queued, {"outcome": "queued"}), Observation(c.dropped, {"outcome": "dropped"}),
            Observation(c.done, {"outcome": "judged"}), Observation(c.failed, {"outcome": "failed"})]],
        unit="{check}", description="shadow checks of semantic cache hits, by outcome")
    meter.create_observable_counter(
        "costmesh.gateway.shadow_verdicts", [lambda _o: [
            Observation(c.same, {"verdict": "same"}), Observation(c.different, {"verdict": "different"})]],
        unit="{verdict}", description="the shadow checks' verdicts (this replica's; the cache counts every replica's)")
    meter.create_observable_counter(
        "costmesh.gateway.shadow_cost", [lambda _o: [Observation(c.cost_usd)]], unit="usd",
        description="what the shadow checks and their judgements cost (billed to the tenants)")


def shadow_checks(runtime: Any, clients: MeshClients, observers: Sequence[Any]) -> ShadowChecks:
    """The gateway's shadow checks (settings from `runtime.env`), watching `clients`' lookups,
    billing to the cost recorder among `observers` (when records are kept), counted on `runtime.meter`."""
    recorder = next((o for o in observers if isinstance(o, CostRecorder)), None)
    checks = ShadowChecks(clients, ShadowSettings.load(runtime.env), records=recorder.write if recorder else None)
    clients.lookup_observers.append(checks.seen_lookup)
    register_metrics(runtime.meter, checks)
    return checks
