"""Unit tests of the cascade with an in-memory provider client and a fake clock (no gRPC)."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from costmesh.catalog import Tier, load_catalog
from costmesh.domain import Generation, Message, Role, Usage
from costmesh.errors import InvalidRequest, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from costmesh.pricing import cost_of, list_cost_of
from costmesh.services.router.cascade import Cascade
from costmesh.services.router.gate import HeuristicGate
from costmesh.services.router.records import Delta, Outcome, RouteRequest, RouteResult
from costmesh.services.router.retry import RetryPolicy

CATALOG = load_catalog()
GOOD = "Four. Two plus two equals four."
QUESTION = (Message.of(Role.USER, "What is 2 + 2?"),)
USAGE = Usage(input_tokens=120, output_tokens=30, cache_read_tokens=20)


class Hang:
    """A behaviour: the call does not answer for `seconds` (real time)."""

    def __init__(self, seconds: float):
        self.seconds = seconds


class FakeProvider:
    """Scripted per model: a queue of Generation texts, exceptions or Hang; then a good answer."""

    def __init__(self, script: dict[str, list] | None = None, *, always: dict[str, Exception] | None = None):
        self.script = {model: list(steps) for model, steps in (script or {}).items()}
        self.always = always or {}
        self.calls: list[str] = []

    async def _next(self, model: str) -> tuple[str, str]:
        self.calls.append(model)
        if model in self.always:
            raise self.always[model]
        step = self.script.get(model, []).pop(0) if self.script.get(model) else GOOD
        if isinstance(step, Exception):
            raise step
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            return GOOD, "stop"
        if isinstance(step, tuple):
            return step
        return step, "stop"

    @staticmethod
    def _generation(model: str, text: str, finish_reason: str) -> Generation:
        spec = CATALOG.model(model)
        return Generation(text, model, spec.provider, USAGE, cost_of(spec, USAGE), finish_reason)

    async def generate(self, call, timeout_s):
        text, finish = await self._next(call.model)
        return self._generation(call.model, text, finish)

    async def stream(self, call, timeout_s):
        text, finish = await self._next(call.model)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        yield self._generation(call.model, "", finish)


class FakeClock:
    def __init__(self):
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def make(provider: FakeProvider, catalog=CATALOG, clock: FakeClock | None = None, **retry) -> Cascade:
    return Cascade(
        catalog,
        provider,
        HeuristicGate(),
        retry=RetryPolicy(**retry),
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


def request(**kw) -> RouteRequest:
    return RouteRequest(messages=kw.pop("messages", QUESTION), **kw)


def cost_usd(model: str) -> float:
    return cost_of(CATALOG.model(model), USAGE).total_usd


async def test_cheapest_model_of_the_simple_tier_first():
    provider = FakeProvider()
    result = await make(provider).execute(request())
    assert provider.calls == ["gpt-5-mini"]
    assert (result.model, result.tier, result.text) == ("gpt-5-mini", Tier.SIMPLE, GOOD)
    assert result.quality_passed and result.quality_score == 1.0
    assert [a.outcome for a in result.attempts] == [Outcome.OK]
    assert result.cost.total_usd == pytest.approx(cost_usd("gpt-5-mini"))
    premium = list_cost_of(CATALOG.premium, Usage(input_tokens=120, output_tokens=30)).total_usd
    assert result.baseline_cost_usd == pytest.approx(premium)
    assert result.list_cost_usd == pytest.approx(list_cost_of(CATALOG.model("gpt-5-mini"), USAGE).total_usd)
    assert result.list_cost_usd > result.cost.total_usd  # the cache read is cheaper than list


async def test_gate_failure_upgrades_once_and_bills_the_failed_attempt():
    provider = FakeProvider({"gpt-5-nano": ["I can't help with that."]})
    result = await make(provider).execute(request(tier=Tier.TRIVIAL))
    assert provider.calls == ["gpt-5-nano", "gpt-5-mini"]
    assert result.upgrades == 1
    assert (result.model, result.tier) == ("gpt-5-mini", Tier.SIMPLE)
    assert [a.outcome for a in result.attempts] == [Outcome.GATE_FAILED, Outcome.OK]
    assert "refusal_phrase" in result.attempts[0].detail
    assert result.cost.total_usd == pytest.approx(cost_usd("gpt-5-nano") + cost_usd("gpt-5-mini"))
    assert result.usage.input_tokens == 2 * USAGE.input_tokens
    assert result.usage.output_tokens == 2 * USAGE.output_tokens
    assert result.list_cost_usd == pytest.approx(sum(a.list_cost_usd for a in result.attempts))
    cascade = make(FakeProvider({"gpt-5-nano": [""]}))
    await cascade.execute(request(tier=Tier.TRIVIAL))
    assert cascade.stats.upgrades["gate"] == 1
    assert cascade.stats.served_by_tier[Tier.SIMPLE] == 1


async def test_rate_limit_waits_at_least_retry_after():
    clock = FakeClock()
    provider = FakeProvider({"gpt-5-mini": [RateLimited("429", retry_after_s=0.3)]})
    result = await make(provider, clock=clock).execute(request())
    assert provider.calls == ["gpt-5-mini", "gpt-5-mini"]
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 0.3
    assert [a.outcome for a in result.attempts] == [Outcome.ERROR, Outcome.OK]
    assert "RateLimited" in result.attempts[0].detail


async def test_rate_limit_backoff_is_jittered_exponential_then_next_model():
    clock = FakeClock()
    provider = FakeProvider(always={"gpt-5-mini": RateLimited("429")})
    result = await make(provider, clock=clock, max_retries=2, base_delay_s=0.2).execute(request())
    assert provider.calls == ["gpt-5-mini"] * 3 + ["claude-haiku-4-5"]
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.2 and 0 <= clock.sleeps[1] <= 0.4
    assert result.model == "claude-haiku-4-5"


async def test_retry_after_longer_than_the_cap_moves_on_without_waiting():
    clock = FakeClock()
    provider = FakeProvider({"gpt-5-mini": [RateLimited("429", retry_after_s=60)]})
    result = await make(provider, clock=clock, max_delay_s=5).execute(request())
    assert clock.sleeps == []
    assert provider.calls == ["gpt-5-mini", "claude-haiku-4-5"]
    assert result.model == "claude-haiku-4-5"


async def test_upstream_error_retried_once_then_the_other_provider():
    provider = FakeProvider(always={"gpt-5-mini": UpstreamError("503")})
    result = await make(provider).execute(request())
    assert provider.calls == ["gpt-5-mini", "gpt-5-mini", "claude-haiku-4-5"]
    assert (result.model, result.provider, result.tier) == ("claude-haiku-4-5", "anthropic", Tier.SIMPLE)
    assert [a.outcome for a in result.attempts] == [Outcome.ERROR, Outcome.ERROR, Outcome.OK]
    assert result.cost.total_usd == pytest.approx(cost_usd("claude-haiku-4-5"))


async def test_whole_tier_down_goes_to_the_next_tier():
    down = Unavailable("connection refused")
    provider = FakeProvider(always={"gpt-5-mini": down, "claude-haiku-4-5": down})
    cascade = make(provider)
    result = await cascade.execute(request())
    assert provider.calls[-1] == "claude-sonnet-4-5"
    assert (result.model, result.tier, result.upgrades) == ("claude-sonnet-4-5", Tier.MODERATE, 1)
    assert sum(a.outcome == Outcome.ERROR for a in result.attempts) == 4
    assert cascade.stats.upgrades == {"gate": 0, "error": 1}


async def test_everything_down_raises_upstream_error_naming_the_attempts():
    provider = FakeProvider(always={m: UpstreamError("boom") for m in CATALOG.models})
    cascade = make(provider)
    with pytest.raises(UpstreamError, match="claude-opus-4-5") as err:
        await cascade.execute(request(tier=Tier.MODERATE))
    assert "gpt-5.1" in str(err.value)
    assert cascade.stats.failures == 1


async def test_pinned_model_never_upgrades():
    provider = FakeProvider({"gpt-5-nano": [""]})
    result = await make(provider).execute(request(model="gpt-5-nano", tier=Tier.TRIVIAL))
    assert provider.calls == ["gpt-5-nano"]
    assert result.model == "gpt-5-nano" and not result.quality_passed
    assert result.quality_score == 0.0 and result.upgrades == 0


async def test_pinned_model_retries_but_never_falls_back():
    provider = FakeProvider(always={"gpt-5-nano": UpstreamError("503")})
    with pytest.raises(UpstreamError):
        await make(provider).execute(request(model="gpt-5-nano"))
    assert provider.calls == ["gpt-5-nano", "gpt-5-nano"]


async def test_pinned_unknown_model_is_invalid():
    with pytest.raises(InvalidRequest, match="model"):
        await make(FakeProvider()).execute(request(model="gpt-0"))


async def test_invalid_request_is_not_retried():
    provider = FakeProvider(always={"gpt-5-mini": InvalidRequest("messages: too long")})
    with pytest.raises(InvalidRequest):
        await make(provider).execute(request())
    assert provider.calls == ["gpt-5-mini"]


async def test_tier_deadline_exceeded_moves_to_the_next_model():
    tiers = dict(CATALOG.tiers)
    tiers[Tier.SIMPLE] = dataclasses.replace(tiers[Tier.SIMPLE], deadline_s=0.05)
    catalog = dataclasses.replace(CATALOG, tiers=tiers)
    provider = FakeProvider({"gpt-5-mini": [Hang(5)]})
    result = await make(provider, catalog=catalog).execute(request())
    assert provider.calls == ["gpt-5-mini", "claude-haiku-4-5"]
    assert result.model == "claude-haiku-4-5"
    assert "UpstreamTimeout" in result.attempts[0].detail


async def test_callers_deadline_is_respected():
    provider = FakeProvider(always={}, script={m: [Hang(5)] * 3 for m in CATALOG.models})
    cascade = Cascade(CATALOG, provider, HeuristicGate())
    with pytest.raises(UpstreamTimeout, match="deadline"):
        await asyncio.wait_for(cascade.execute(request(timeout_s=0.1)), 2)
    assert provider.calls == ["gpt-5-mini"]


async def test_max_tier_caps_the_cascade():
    provider = FakeProvider({"gpt-5-mini": [""]})
    result = await make(provider).execute(request(tier=Tier.COMPLEX, max_tier=Tier.SIMPLE))
    assert provider.calls == ["gpt-5-mini"]
    assert result.tier == Tier.SIMPLE and not result.quality_passed


async def test_gate_failed_answer_served_when_the_upgrade_is_down():
    provider = FakeProvider(
        {"claude-sonnet-4-5": [("Short.", "length")]},
        always={"claude-opus-4-5": UpstreamError("503"), "gpt-5.1": UpstreamError("503")},
    )
    result = await make(provider).execute(request(tier=Tier.MODERATE))
    assert result.model == "claude-sonnet-4-5" and result.text == "Short."
    assert not result.quality_passed
    assert [a.outcome for a in result.attempts][0] == Outcome.GATE_FAILED


async def collect(cascade: Cascade, req: RouteRequest) -> tuple[list[str], RouteResult]:
    deltas, final = [], None
    async for event in cascade.stream(req):
        if isinstance(event, Delta):
            deltas.append(event.text)
        else:
            final = event
    assert final is not None
    return deltas, final


async def test_stream_buffers_attempts_the_gate_may_still_reject():
    script = {"gpt-5-nano": ["As an AI, I cannot assist."]}
    deltas, final = await collect(make(FakeProvider(script)), request(tier=Tier.TRIVIAL))
    assert deltas == [GOOD]  # the rejected answer never reached the caller
    executed = await make(FakeProvider(script)).execute(request(tier=Tier.TRIVIAL))
    assert final.cost.total_usd == pytest.approx(executed.cost.total_usd)
    assert [a.outcome for a in final.attempts] == [a.outcome for a in executed.attempts]
    assert final.text == executed.text == GOOD


async def test_stream_passes_the_last_tier_straight_through():
    provider = FakeProvider()
    deltas, final = await collect(make(provider), request(tier=Tier.COMPLEX))
    assert len(deltas) == len(GOOD.split(" ")) and "".join(deltas) == GOOD
    assert final.text == GOOD and final.model == "claude-opus-4-5"


async def test_stream_of_a_pinned_model_falls_back_never():
    provider = FakeProvider({"gpt-5-nano": [RateLimited("429", 0.01)]})
    deltas, final = await collect(make(provider), request(model="gpt-5-nano"))
    assert "".join(deltas) == GOOD and provider.calls == ["gpt-5-nano", "gpt-5-nano"]
    assert len(final.attempts) == 2


class BreaksMidStream(FakeProvider):
    async def stream(self, call, timeout_s):
        self.calls.append(call.model)
        yield "partial"
        raise UpstreamError("connection reset")


async def test_stream_broken_after_output_is_an_error():
    with pytest.raises(UpstreamError, match="partial"):
        await collect(make(BreaksMidStream()), request(tier=Tier.COMPLEX))
