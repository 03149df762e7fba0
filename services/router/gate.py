"""Quality gate: is a cheap model's answer good enough to serve, or should the cascade upgrade?

`QualityGate` is the interface (async, so a later gate can ask an LLM judge); `HeuristicGate`
is the baseline. Gates are picked by name with `gate_factory.build_gate` (env COSTMESH_ROUTER_GATE).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from costmesh.catalog import Tier
from costmesh.domain import Generation, Message, last_user_text


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float  # in [0, 1]; 1 = nothing wrong found
    reasons: tuple[str, ...] = ()


class QualityGate(Protocol):
    """`score` is the classifier's P(the cheap model is not good enough), `tier` the answering tier."""

    name: str

    async def check(
        self, messages: Sequence[Message], answer: Generation, *, score: float | None = None, tier: Tier | None = None
    ) -> Verdict: ...


REFUSAL_PHRASES = (
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i can't provide",
    "i cannot provide",
    "i must decline",
    "i won't be able to",
    "as an ai",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
)
REFUSAL_WINDOW = 300  # a refusal opens the answer; the phrase deep inside a long answer is not one

# Prompts that ask for an explanation, and the fewest words an answer to them should have.
_DEMANDS_DETAIL = re.compile(
    r"step[- ]by[- ]step|in detail|detailed|thorough\w*|comprehensive|essay|show (your|the|all) work|walk me through",
    re.IGNORECASE,
)
_DEMANDS_EXPLANATION = re.compile(
    r"\b(explain|describe|elaborate|compare|contrast|analy[sz]e|discuss|justify|derive|prove|implement|why)\b",
    re.IGNORECASE,
)
MIN_WORDS_DETAIL = 40
MIN_WORDS_EXPLANATION = 8

# Penalties: the score is the product of the factors of what was found.
FACTORS = {
    "empty": 0.0,
    "refusal": 0.1,
    "refusal_phrase": 0.15,
    "repetition": 0.25,
    "truncated": 0.3,
    "too_short": 0.35,
}
# Reasons that fail an answer outright, whatever a learned gate's score says.
HARD_FAILURES = frozenset({"empty", "refusal", "refusal_phrase", "truncated", "repetition"})


def _is_loop(text: str) -> bool:
    """Degenerate repetition: few distinct 4-word shingles, or one line over and over."""
    words = text.lower().split()
    if len(words) >= 30:
        shingles = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        if len(set(shingles)) / len(shingles) < 0.5:
            return True
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    if len(lines) >= 6:
        _, top = Counter(lines).most_common(1)[0]
        if top >= 3 and top / len(lines) >= 0.3:
            return True
    return False


def _too_short(prompt: str, answer: str) -> bool:
    words = len(answer.split())
    if _DEMANDS_DETAIL.search(prompt):
        return words < MIN_WORDS_DETAIL
    if _DEMANDS_EXPLANATION.search(prompt):
        return words < MIN_WORDS_EXPLANATION
    return False


class HeuristicGate:
    """Fails empty, refused, truncated, looping and suspiciously short answers."""

    name = "heuristic"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def reasons(self, messages: Sequence[Message], answer: Generation) -> list[str]:
        text = answer.text.strip()
        if not text:
            return ["empty"]
        found = []
        if answer.finish_reason == "refusal":
            found.append("refusal")
        opening = text[:REFUSAL_WINDOW].lower().replace("\u2019", "'")
        if any(phrase in opening for phrase in REFUSAL_PHRASES):
            found.append("refusal_phrase")
        if answer.finish_reason == "length":
            found.append("truncated")
        if _is_loop(text):
            found.append("repetition")
        if _too_short(last_user_text(messages), text):
            found.append("too_short")
        return found

    async def check(
        self, messages: Sequence[Message], answer: Generation, *, score: float | None = None, tier: Tier | None = None
    ) -> Verdict:
        reasons = self.reasons(messages, answer)
        score = 1.0
        for reason in reasons:
            score *= FACTORS[reason]
        return Verdict(passed=score >= self.threshold, score=score, reasons=tuple(reasons))
