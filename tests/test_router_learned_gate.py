"""The learned gate (the packaged router artifact's answer gate) and the cascade around it:
an upgrade exactly when the gate fails, with the failed cheap attempt on the bill."""

from __future__ import annotations

import random

import pytest

from costmesh.catalog import Tier, load_catalog
from costmesh.domain import Generation, Message, Role, Usage
from costmesh.pricing import cost_of
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.routing.scorer import ArtifactSource
from costmesh.services.router.cascade import Cascade
from costmesh.services.router.gate import HeuristicGate
from costmesh.services.router.gate_factory import build_gate
from costmesh.services.router.learned_gate import LearnedGate
from costmesh.services.router.records import Outcome, RouteRequest
from costmesh.services.router.retry import RetryPolicy
from costmesh.services.router.stats import RouterStats

CATALOG = load_catalog()
USAGE = Usage(input_tokens=90, output_tokens=60)
PROBLEM = ("Rafaela got a $20 tip from each of 40 customers. Julieta received 10% less money in tips than "
           "Rafaela. How much money did they receive as tips altogether?")
RIGHT = ("Rafaela received 40 x $20 = $<<40*20=800>>800.\nJulieta received 800 x 10/100 = $<<800*10/100=80>>80 "
         "less, so she received 800 - 80 = $<<800-80=720>>720.\nTogether: 800 + 720 = $<<800+720=1520>>1520."
         "\n#### 1520")
WRONG = ("Rafaela received 40 x $20 = $<<40*20=800>>800.\nJulieta received 800 x 10/100 = $<<800*10/100=80>>80 "
         "less, so she received 800 - 80 = $<<800-80=720>>720.\nTogether: 800 + 720 = $<<800+720=1420>>1420."
         "\n#### 1420")
NO_WORK = "They received a lot of money in tips, probably about a thousand dollars."


def gate() -> LearnedGate:
    return LearnedGate(ArtifactSource(DEFAULT_ARTIFACT), HeuristicGate(), Tier.SIMPLE)


def answer(text: str, model: str = "gpt-5-mini") -> Generation:
    spec = CATALOG.model(model)
    return Generation(text, model, spec.provider, USAGE, cost_of(spec, USAGE))


QUESTION = (Message.of(Role.USER, PROBLEM),)


async def test_gate_passes_worked_right_answers_and_fails_wrong_or_unworked_ones():
    g = gate()
    right = await g.check(QUESTION, answer(RIGHT), score=0.1, tier=Tier.SIMPLE)
    wrong = await g.check(QUESTION, answer(WRONG), score=0.1, tier=Tier.SIMPLE)
    bare = await g.check(QUESTION, answer(NO_WORK), score=0.1, tier=Tier.SIMPLE)
    assert right.passed and right.score > wrong.score
    assert not wrong.passed and "arith_wrong_any" in wrong.reasons
    assert not bare.passed and "no_final_answer" in bare.reasons


async def test_gate_judges_only_the_cheap_tiers_and_non_math_by_the_prompt_score():
    g = gate()
    strong = await g.check(QUESTION, answer(NO_WORK, "claude-sonnet-4-5"), score=0.1, tier=Tier.MODERATE)
    assert strong.passed  # the heuristics alone above max_tier
    chat = (Message.of(Role.USER, "Summarise the plot of Hamlet in three sentences."),)
    threshold = ArtifactSource(DEFAULT_ARTIFACT).current().threshold
    low = await g.check(chat, answer("Hamlet avenges his father. Many die. Fortinbras takes the throne."),
                        score=threshold / 2, tier=Tier.SIMPLE)
    high = await g.check(chat, answer("Hamlet avenges his father. Many die. Fortinbras takes the throne."),
                         score=min(1.0, threshold * 2 + 0.01), tier=Tier.SIMPLE)
    assert low.passed and not high.passed


async def test_gate_fails_a_refusal_outright():
    verdict = await gate().check(QUESTION, answer("I can't help with that."), score=0.0, tier=Tier.SIMPLE)
    assert not verdict.passed and "refusal_phrase" in verdict.reasons


class Scripted:
    """An in-memory provider: each model answers its scripted text."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts
        self.calls: list[str] = []

    async def generate(self, call, timeout_s):
        self.calls.append(call.model)
        return answer(self.texts.get(call.model, RIGHT), call.model)

    async def stream(self, call, timeout_s):  # pragma: no cover - not used here
        raise NotImplementedError


def cascade(provider, stats) -> Cascade:
    return Cascade(CATALOG, provider, gate(), retry=RetryPolicy(), rng=random.Random(1), stats=stats)


@pytest.mark.parametrize("cheap,upgrades", [(RIGHT, False), (WRONG, True), (NO_WORK, True)])
async def test_cascade_upgrades_exactly_when_the_gate_fails_and_bills_every_attempt(cheap, upgrades):
    provider = Scripted({"gpt-5-mini": cheap, "claude-sonnet-4-5": RIGHT})
    stats = RouterStats()
    result = await cascade(provider, stats).execute(RouteRequest(messages=QUESTION, tier=Tier.SIMPLE, score=0.1))
    mini, sonnet = (cost_of(CATALOG.model(m), USAGE).total_usd for m in ("gpt-5-mini", "claude-sonnet-4-5"))
    if upgrades:
        assert provider.calls == ["gpt-5-mini", "claude-sonnet-4-5"]
        assert [a.outcome for a in result.attempts] == [Outcome.GATE_FAILED, Outcome.OK]
        assert result.model == "claude-sonnet-4-5" and result.text == RIGHT
        assert result.cost.total_usd == pytest.approx(mini + sonnet)  # the failed cheap attempt is billed
        assert stats.upgrades["gate"] == 1 and stats.upgrade_rate == 1.0
    else:
        assert provider.calls == ["gpt-5-mini"]
        assert result.cost.total_usd == pytest.approx(mini)
        assert stats.upgrades["gate"] == 0 and stats.upgrade_rate == 0.0
    assert sum(stats.served_by_tier.values()) == 1 and sum(stats.quality_histogram) == 1


def test_build_gate_by_name():
    assert build_gate("heuristic").name == "heuristic"
    assert build_gate("learned", artifact_path=str(DEFAULT_ARTIFACT)).name == "learned"


async def test_upgrades_tiers_and_quality_reach_the_metrics():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    stats = RouterStats(meter=meter)
    provider = Scripted({"gpt-5-mini": WRONG, "claude-sonnet-4-5": RIGHT})
    await cascade(provider, stats).execute(RouteRequest(messages=QUESTION, tier=Tier.SIMPLE, score=0.1))
    provider.texts["gpt-5-mini"] = RIGHT
    await cascade(provider, stats).execute(RouteRequest(messages=QUESTION, tier=Tier.SIMPLE, score=0.1))
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted(point.attributes.items())))
                    points[key] = getattr(point, "value", None) if hasattr(point, "value") else point.count
    assert points[("costmesh.router.requests", (("result", "served"),))] == 2
    assert points[("costmesh.router.served", (("tier", "moderate"),))] == 1
    assert points[("costmesh.router.served", (("tier", "simple"),))] == 1
    assert points[("costmesh.router.upgrades", (("reason", "gate"),))] == 1
    assert points[("costmesh.router.attempts", (("outcome", "gate_failed"),))] == 1
    assert points[("costmesh.router.attempts", (("outcome", "ok"),))] == 2
    assert points[("costmesh.router.upgrades", (("reason", "error"),))] == 0  # the series exists from the start
    assert points[("costmesh.quality.score", (("tier", "moderate"),))] == 1  # what the quality alert reads
    assert points[("costmesh.quality.score", (("tier", "simple"),))] == 1
    assert stats.upgrade_rate == 0.5
