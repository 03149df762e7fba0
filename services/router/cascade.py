"""The cascade: cheapest adequate model first, quality gate, upgrade, retry and fallback.

Plan: the tiers from the requested one (default simple, capped by `max_tier`) up to the cap,
each with its catalog models in order (the cheapest adequate first, the other provider next).
A pinned model is a plan of one model: retries only, no fallback, no gate-driven upgrade.

Per model (`_call`): 429 -> wait (full-jitter backoff, at least retry-after) and retry up to
`max_retries`; 5xx / unreachable -> `transient_retries` retry, then the next model; a timeout
(the tier's deadline, or the provider's) -> the next model at once: a slow model stays slow;
InvalidRequest -> raised, never retried; any other costmesh error -> the next model.
All models of a tier failed -> the next tier. A gate failure -> the next tier; on the last
tier the answer is served with quality_passed=false. Nothing left -> UpstreamError, or the
last gate-failed answer if there is one. 429s are bounded per request (`RetryPolicy`: at most
`max_rate_limited` of them, `rate_limit_wait_s` of waiting): past that, or when every failure
was a 429, the request answers RateLimited with the shortest retry-after an upstream gave.

Spans (inside the RPC's server span): `router.attempt` per provider call, retries included
(model, tier, attempt index, outcome), and `router.gate` around each quality-gate check.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, replace

from opentelemetry import trace
from opentelemetry.trace import Tracer

from costmesh.catalog import Catalog, ModelSpec, Tier
from costmesh.domain import Generation
from costmesh.errors import (
    CostmeshError,
    InvalidRequest,
    RateLimited,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from costmesh.output_spec import required_capabilities
from costmesh.routing.output_checks import output_problems

from .accounting import answered_attempt, bill
from .gate import QualityGate, Verdict
from .provider_client import ProviderCall, ProviderClient
from .records import Attempt, Delta, Outcome, RouteRequest, RouteResult
from .retry import Backoff, Clock, RetryPolicy, SystemClock
from .stats import RouterStats

DEFAULT_TIER = Tier.SIMPLE
DEADLINE_MARGIN_S = 0.05  # kept from the caller's deadline to answer it (e.g. with a gate-failed answer)


class _OutOfTime(Exception):
    """The caller's deadline is spent: no further attempt can be made."""


class _RateLimitSpent(Exception):
    """The request's 429 budget is spent (`RetryPolicy.max_rate_limited`): it answers RateLimited."""


MIN_RETRY_AFTER_S = 1.0  # the wait a RateLimited answer asks for when the upstreams asked for less


@dataclass
class _Reply:
    answer: Generation
    latency_ms: float


@dataclass
class _Answered:
    spec: ModelSpec
    tier: Tier
    reply: _Reply
    verdict: Verdict


@dataclass
class _Run:
    """The state of one request through the cascade."""

    request: RouteRequest
    deadline: float | None
    attempts: list[Attempt]
    upgrades: int = 0  # moves up a tier
    gate_upgrades: int = 0  # of which the gate asked for
    calls: int = 0  # provider calls made, retries included (the `router.attempt` spans' index)
    rate_limited: int = 0  # attempts answered 429
    rate_limit_waited_s: float = 0.0  # slept after them
    rate_limit_spent: bool = False
    retry_after_s: float | None = None  # the shortest wait an upstream asked for


class Cascade:
    def __init__(
        self,
        catalog: Catalog,
        client: ProviderClient,
        gate: QualityGate,
        *,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        stats: RouterStats | None = None,
        tracer: Tracer | None = None,
    ):
        self._catalog = catalog
        self._client = client
        self._gate = gate
        self._retry = retry or RetryPolicy()
        self._backoff = Backoff(self._retry, rng)
        self._clock = clock or SystemClock()
        self.stats = stats or RouterStats()
        self._tracer = tracer or trace.get_tracer("costmesh.router")

    async def execute(self, request: RouteRequest) -> RouteResult:
        """Run the cascade; the answer comes back whole."""
        async for event in self._run(request, streaming=False):
            if isinstance(event, RouteResult):
                return event
        raise AssertionError("cascade ended without a result")

    async def stream(self, request: RouteRequest) -> AsyncIterator[Delta | RouteResult]:
        """Deltas of the served answer, then the `RouteResult` (same bill as `execute`).

        Attempts the gate may still reject are buffered and flushed once it passes them; the
        last possible attempt (last tier, or a pinned model) streams straight through.
        """
        async for event in self._run(request, streaming=True):
            yield event

    def plan(self, request: RouteRequest) -> list[tuple[Tier, tuple[ModelSpec, ...]]]:
        """The tiers to try, cheapest first, each with its models that can serve the request
        (tools, images, JSON schema: `ModelSpec.capabilities`)."""
        needs = required_capabilities(request.output, request.messages)
        if request.model:
            spec = self._catalog.model(request.model)
            if not spec.supports(needs):
                missing = ", ".join(sorted(needs - spec.capabilities))
                raise InvalidRequest(f"model: {spec.id!r} cannot serve this request (it lacks {missing})")
            return [(spec.tier, (spec,))]
        cap = request.max_tier or Tier.COMPLEX
        start = min(request.tier or DEFAULT_TIER, cap)
        plan = [(tier, tuple(m for m in self._catalog.tier_models(tier) if m.supports(needs)))
                for tier in Tier if start <= tier <= cap]
        plan = [(tier, models) for tier, models in plan if models]
        if not plan:
            raise InvalidRequest(f"no model from tier {start.name.lower()} up to {cap.name.lower()} can serve "
                                 f"this request (it needs {', '.join(sorted(needs))})")
        return plan

    def first(self, request: RouteRequest, providers: Collection[str] = ()) -> tuple[Tier, ModelSpec]:
        """The first model the plan would call, of `providers` when given (e.g. those with a batch API)."""
        for tier, models in self.plan(request):
            for spec in models:
                if not providers or spec.provider in providers:
                    return tier, spec
        if request.model:
            raise InvalidRequest(f"model: {request.model!r} is served by "
                                 f"{self._catalog.model(request.model).provider!r}, not by {sorted(providers)}")
        raise Unavailable(f"no model of {sorted(providers)} in the cascade from tier "
                          f"{(request.tier or DEFAULT_TIER).name.lower()} up to "
                          f"{(request.max_tier or Tier.COMPLEX).name.lower()}")

    async def _run(self, request: RouteRequest, streaming: bool) -> AsyncIterator[Delta | RouteResult]:
        if not request.messages:
            raise InvalidRequest("messages: at least one message is required")
        plan = self.plan(request)
        deadline = None if request.timeout_s is None else self._clock.now() + request.timeout_s - DEADLINE_MARGIN_S
        run = _Run(request, deadline, [])
        last_tier = plan[-1][0]
        pinned = bool(request.model)
        tried: set[str] = set()
        rejected: _Answered | None = None  # the last answer the gate failed
        current_tier: Tier | None = None
        try:
            for tier, models in plan:
                for spec in models:
                    if spec.id in tried:
                        continue
                    tried.add(spec.id)
                    if current_tier is not None and tier > current_tier:
                        run.upgrades += 1
                        run.gate_upgrades += int(rejected is not None and rejected.tier == current_tier)
                    current_tier = tier
                    final_step = pinned or tier == last_tier
                    reply = None
                    async for event in self._call(run, spec, tier, direct=streaming and final_step):
                        if isinstance(event, Delta):
                            yield event
                        else:
                            reply = event
                    if reply is None:
                        continue  # this model gave up: the next one of the tier
                    verdict = await self._check(request, spec, tier, reply)
                    answered = _Answered(spec, tier, reply, verdict)
                    if verdict.passed or final_step:
                        if streaming and not final_step and reply.answer.text:
                            yield Delta(reply.answer.text)
                        yield self._finish(run, answered, Outcome.OK)
                        return
                    run.attempts.append(self._attempt(answered, Outcome.GATE_FAILED))
                    rejected = answered
                    break  # the gate failed it: up a tier
        except (_OutOfTime, _RateLimitSpent):
            pass
        if rejected is not None:
            if streaming and rejected.reply.answer.text:
                yield Delta(rejected.reply.answer.text)
            yield self._finish(run, rejected, None)
            return
        self.stats.record_failure(run.attempts)
        raise self._exhausted(run)

    async def _check(self, request: RouteRequest, spec: ModelSpec, tier: Tier, reply: _Reply) -> Verdict:
        attributes = {"gen_ai.request.model": spec.id, "costmesh.tier": tier.name.lower()}
        with self._tracer.start_as_current_span("router.gate", attributes=attributes) as span:
            verdict = await self._verdict(request, reply.answer, tier)
            span.set_attribute("costmesh.gate.passed", verdict.passed)
            span.set_attribute("costmesh.quality_score", verdict.score)
            return verdict

    async def _verdict(self, request: RouteRequest, answer: Generation, tier: Tier) -> Verdict:
        """The answer's shape first (tool calls, JSON: `output_checks`), a hard failure when wrong;
        then the quality gate on prose. An answer whose shape was checked (tool calls, JSON) is
        not prose, so the gate is not asked."""
        problems = output_problems(answer, request.output)
        if problems:
            return Verdict(passed=False, score=0.0, reasons=tuple(problems))
        if answer.tool_calls or request.output.response_format.is_json:
            return Verdict(passed=True, score=1.0)
        return await self._gate.check(request.messages, answer, score=request.score, tier=tier)

    @staticmethod
    def _attempt(answered: _Answered, outcome: Outcome) -> Attempt:
        reply = answered.reply
        return answered_attempt(answered.spec, answered.tier, reply.answer, outcome, answered.verdict, reply.latency_ms)

    def _finish(self, run: _Run, served: _Answered, outcome: Outcome | None) -> RouteResult:
        """Bill the served answer. `outcome` None: it was already recorded (a gate-failed fallback)."""
        if outcome is not None:
            run.attempts.append(self._attempt(served, outcome))
        result = bill(
            self._catalog, run.attempts, served.spec, served.reply.answer, served.tier, served.verdict, run.upgrades
        )
        self.stats.record(result, run.gate_upgrades, run.upgrades - run.gate_upgrades)
        span = trace.get_current_span()
        span.set_attribute("costmesh.tier", result.tier.name.lower())
        span.set_attribute("gen_ai.request.model", result.model)
        span.set_attribute("costmesh.attempts", len(result.attempts))
        span.set_attribute("costmesh.upgrades", result.upgrades)
        span.set_attribute("costmesh.cost_usd", result.cost.total_usd)
        span.set_attribute("costmesh.baseline_cost_usd", result.baseline_cost_usd)
        span.set_attribute("costmesh.quality_score", result.quality_score)
        span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", result.usage.output_tokens)
        return result

    def _exhausted(self, run: _Run) -> CostmeshError:
        tried = "; ".join(f"{a.model}@{a.tier.name.lower()}: {a.detail}" for a in run.attempts) or "no attempt"
        span = trace.get_current_span()
        span.set_attribute("costmesh.attempts", len(run.attempts))
        out_of_time = run.deadline is not None and self._clock.now() >= run.deadline
        if out_of_time:
            return UpstreamTimeout(f"deadline exceeded after {len(run.attempts)} attempts ({tried})")
        failed = sum(a.outcome == Outcome.ERROR for a in run.attempts)
        if run.rate_limit_spent or (run.rate_limited and run.rate_limited == failed):
            retry_after = max(MIN_RETRY_AFTER_S, run.retry_after_s or 0.0)
            return RateLimited(f"rate limited upstream after {len(run.attempts)} attempts ({tried})", retry_after)
        return UpstreamError(f"every model failed after {len(run.attempts)} attempts ({tried})")

    def _timeout(self, run: _Run, tier: Tier) -> float:
        """Seconds this attempt may take: the tier's deadline, within the caller's."""
        timeout = self._catalog.tiers[tier].deadline_s
        if run.deadline is not None:
            left = run.deadline - self._clock.now()
            if left <= 0:
                raise _OutOfTime
            timeout = min(timeout, left)
        return timeout

    def _rate_limited(self, run: _Run, error: RateLimited) -> None:
        run.rate_limited += 1
        if error.retry_after_s is not None:
            hints = [error.retry_after_s] if run.retry_after_s is None else [run.retry_after_s, error.retry_after_s]
            run.retry_after_s = min(hints)
        if run.rate_limited >= self._retry.max_rate_limited:
            run.rate_limit_spent = True
            raise _RateLimitSpent

    async def _wait(self, run: _Run, delay: float) -> bool:
        """Sleep `delay` if it fits the policy and the caller's deadline; False: don't retry."""
        if delay > self._retry.max_delay_s:
            return False
        if run.deadline is not None and self._clock.now() + delay >= run.deadline:
            return False
        await self._clock.sleep(delay)
        return True

    async def _call(self, run: _Run, spec: ModelSpec, tier: Tier, direct: bool) -> AsyncIterator[Delta | _Reply]:
        """One model, with its retries. Yields deltas (when `direct`) then its answer; nothing if it gave up."""
        request = run.request
        call = ProviderCall(spec.id, request.messages, request.sampling, request.tenant_id, output=request.output)
        rate_retries = transient_retries = 0
        while True:
            timeout = self._timeout(run, tier)
            started = self._clock.now()
            streamed = False
            span = self._tracer.start_span("router.attempt", attributes={
                "gen_ai.request.model": spec.id,
                "costmesh.tier": tier.name.lower(),
                "costmesh.attempt": run.calls,
                "costmesh.retry": rate_retries + transient_retries,
            })
            run.calls += 1
            try:
                if direct:
                    # Streamed through: the span is not made current across the yields (the
                    # consumer runs between them), so it ends here whatever the consumer does.
                    answer = None
                    async for event in self._stream_once(call, timeout):
                        if isinstance(event, Delta):
                            streamed = True
                            yield event
                        else:
                            answer = event
                else:
                    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                        async with asyncio.timeout(timeout):
                            answer = await self._client.generate(call, timeout)
            except TimeoutError:
                error: CostmeshError = UpstreamTimeout(f"no answer within {timeout:.2f}s")
            except CostmeshError as exc:
                error = exc
            except BaseException:
                span.set_attribute("costmesh.outcome", "abandoned")
                span.end()
                raise
            else:
                span.set_attribute("costmesh.outcome", "answered")
                span.end()
                yield _Reply(answer, (self._clock.now() - started) * 1000)
                return
            span.set_attribute("costmesh.outcome", type(error).__name__)
            span.end()

            run.attempts.append(
                Attempt(
                    model=spec.id,
                    provider=spec.provider,
                    tier=tier,
                    outcome=Outcome.ERROR,
                    detail=f"{type(error).__name__}: {error}",
                    latency_ms=(self._clock.now() - started) * 1000,
                )
            )
            if isinstance(error, InvalidRequest):
                raise error
            if streamed:
                raise UpstreamError(f"{spec.id}: stream broke after partial output: {error}") from error
            if run.deadline is not None and self._clock.now() >= run.deadline:
                raise _OutOfTime
            if isinstance(error, RateLimited):
                self._rate_limited(run, error)  # raises _RateLimitSpent once the request's budget is spent
            if isinstance(error, RateLimited) and rate_retries < self._retry.max_retries:
                delay = self._backoff.delay(rate_retries, error.retry_after_s)
                if run.rate_limit_waited_s + delay <= self._retry.rate_limit_wait_s and await self._wait(run, delay):
                    run.rate_limit_waited_s += delay
                    rate_retries += 1
                    continue
            elif isinstance(error, UpstreamError | Unavailable) and transient_retries < self._retry.transient_retries:
                if await self._wait(run, self._backoff.delay(transient_retries)):
                    transient_retries += 1
                    continue
            return

    async def _stream_once(self, call: ProviderCall, timeout: float) -> AsyncIterator[Delta | Generation]:
        """One streamed call: deltas, then the final `Generation` with the text joined."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        events = self._client.stream(call, timeout)
        pieces: list[str] = []
        final: Generation | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout_at(end):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                if isinstance(event, str):
                    if event:
                        pieces.append(event)
                        yield Delta(event)
                else:
                    final = event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if final is None:
            raise UpstreamError(f"{call.model}: stream ended without a final event")
        yield replace(final, text="".join(pieces))
