"""Unit tests of the rules classifier and the strategy dispatch (no gRPC)."""

from __future__ import annotations

import pytest

from costmesh.catalog import Tier
from costmesh.domain import Message, Role
from costmesh.errors import ConfigError, InvalidRequest
from costmesh.services.classifier.rules import RulesStrategy
from costmesh.services.classifier.signals import LONG_CONTEXT, SCAN_CHARS, VERY_LONG_PROMPT, Features
from costmesh.services.classifier.strategy import Classification, Classifier, tier_for_score

ARCHITECTURE_QUESTION = """Design a distributed rate limiter for our API gateway. Requirements:
1. 100k requests/s across 20 nodes
2. per-tenant quotas that can change at runtime
Here is our current code:
```python
def allow(tenant):
    return redis.incr(tenant) < LIMIT
```
What are the trade-offs between a token bucket and a sliding window here?
How would you handle a Redis failover? Then sketch the architecture."""

# From easy to hard; each should score at least as high as the one before.
LADDER = [
    "Hello!",
    "What is the capital of France?",
    "Summarize the plot of Hamlet in three sentences.",
    "Explain step by step how to calculate the compound interest on 1000 dollars at 5% over 3 years.",
    ARCHITECTURE_QUESTION,
]


def user(text: str) -> list[Message]:
    return [Message.of(Role.USER, text)]


def classify(text: str) -> Classification:
    return RulesStrategy().classify(user(text))


@pytest.mark.parametrize("text", ["Hello!", "hi there, how are you?", "Thanks!", "good morning"])
def test_greetings_are_trivial(text):
    result = classify(text)
    assert result.tier == Tier.TRIVIAL
    assert "greeting" in result.signals
    assert result.score < 0.2


@pytest.mark.parametrize(
    "text, signal",
    [
        ("What is the capital of France?", "short_definition"),
        ("Is water wet?", "yes_no_question"),
        ("Translate 'cat' into French", "word_translation"),
    ],
)
def test_trivial_cues(text, signal):
    result = classify(text)
    assert result.tier == Tier.TRIVIAL
    assert signal in result.signals


def test_multi_part_architecture_question_with_code_is_complex():
    result = classify(ARCHITECTURE_QUESTION)
    assert result.tier == Tier.COMPLEX
    assert result.score > 0.9
    for signal in ("code", "design", "analysis", "several_questions", "list"):
        assert signal in result.signals, result.signals


def test_scores_rise_with_difficulty():
    scores = [classify(text).score for text in LADDER]
    assert scores == sorted(scores), scores
    assert classify(LADDER[0]).tier < classify(LADDER[3]).tier < classify(LADDER[-1]).tier


@pytest.mark.parametrize(
    "text, signal",
    [
        ("Prove that there are infinitely many primes.", "proof"),
        ("Solve x^2 - 5x + 6 = 0 and show your work.", "math"),
        ("Solve x^2 - 5x + 6 = 0 and show your work.", "equation"),
        ("Explain step by step why the sky is blue.", "step_by_step"),
        ("Add 12, 47 and 90 together.", "numbers"),
        ("First install the package, then configure it, finally run the tests.", "sequencing"),
        ("Write a short story about a lighthouse keeper.", "creative"),
        ("Refactor this Python function for readability.", "programming"),
    ],
)
def test_signals_fire(text, signal):
    assert signal in classify(text).signals


def test_analytical_essay_is_at_least_moderate():
    result = classify("Write an essay comparing the economic policies of Keynes and Hayek "
                      "and analyze their trade-offs.")
    assert result.tier >= Tier.MODERATE
    assert {"creative", "analysis"} <= set(result.signals)


def test_plain_question_without_cues_is_simple():
    result = classify("Summarize the plot of Hamlet in three sentences.")
    assert result.signals == ()
    assert result.tier == Tier.SIMPLE


def test_length_and_context_raise_the_score():
    short = classify("Summarize this text for me please.")
    long_text = "Summarize this text for me please. " + "The committee met and discussed the budget. " * 40
    assert "long_prompt" in classify(long_text).signals
    assert classify(long_text).score > short.score
    history = [Message.of(Role.SYSTEM, "You are a helpful assistant. " * 500)]
    history += [Message.of(Role.USER, "Summarize this text for me please.")]
    in_context = RulesStrategy().classify(history)
    assert "long_context" in in_context.signals
    assert in_context.score > short.score


def test_reads_the_last_user_message():
    messages = [
        Message.of(Role.USER, ARCHITECTURE_QUESTION),
        Message.of(Role.ASSISTANT, "Here is a design..."),
        Message.of(Role.USER, "Thanks!"),
    ]
    result = RulesStrategy().classify(messages)
    assert "greeting" in result.signals
    assert "design" not in result.signals


def test_long_prompts_stay_bounded():
    strategy = RulesStrategy()
    messages = [
        Message.of(Role.SYSTEM, "You answer questions about the attached contract. " * 500),
        Message.of(Role.USER, "The parties agree to the terms below. " * 2000 + "Summarize the obligations."),
    ]
    result = strategy.classify(messages)
    assert {"very_long_prompt", "long_context"} <= set(result.signals)
    # Bounded work (no timing here): token counting stops at the caps instead of counting it all.
    features = Features.of(messages)
    assert features.tokens == VERY_LONG_PROMPT and features.context_tokens == LONG_CONTEXT
    assert len(features.text) <= SCAN_CHARS + 1


def test_bands():
    assert tier_for_score(0.0) == Tier.TRIVIAL
    assert tier_for_score(0.19) == Tier.TRIVIAL
    assert tier_for_score(0.2) == Tier.SIMPLE
    assert tier_for_score(0.5) == Tier.MODERATE
    assert tier_for_score(0.7) == Tier.COMPLEX
    assert tier_for_score(1.0) == Tier.COMPLEX


class Constant:
    name = "constant"

    def classify(self, messages, embedding=None):
        return Classification(Tier.MODERATE, 0.5, ("always",), self.name)


def test_classifier_dispatches_by_name():
    classifier = Classifier({"rules": RulesStrategy(), "constant": Constant()}, default="rules")
    assert classifier.classify(user("Hello!")).strategy == "rules"
    assert classifier.classify(user("Hello!"), strategy="constant").tier == Tier.MODERATE


def test_unknown_strategy_names_the_field():
    classifier = Classifier({"rules": RulesStrategy()})
    with pytest.raises(InvalidRequest, match="strategy"):
        classifier.classify(user("Hello!"), strategy="nope")


def test_empty_messages_rejected():
    with pytest.raises(InvalidRequest, match="messages"):
        Classifier({"rules": RulesStrategy()}).classify([])


def test_unknown_default_fails_at_start():
    with pytest.raises(ConfigError, match="COSTMESH_CLASSIFIER_STRATEGY"):
        Classifier({"rules": RulesStrategy()}, default="learned")
