"""The `rules` strategy: weighted signals, squashed into a score, banded into a tier.

score = sigmoid(sum(weights of the rules that fired) - BIAS). With no signal at all the
score is sigmoid(-1.2) ~ 0.23: a plain question starts in the simple tier. Bands are in
`strategy.DEFAULT_BANDS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from costmesh.catalog import Tier
from costmesh.domain import Message

from .signals import RULES, Features, Rule
from .strategy import DEFAULT_BANDS, Classification, tier_for_score

BIAS = 1.2


class RulesStrategy:
    """The baseline: regex and length rules over the last user message and its context."""

    name = "rules"

    def __init__(
        self,
        rules: Sequence[Rule] = RULES,
        bias: float = BIAS,
        bands: Sequence[tuple[Tier, float]] = DEFAULT_BANDS,
    ):
        self._rules = tuple(rules)
        self._bias = bias
        self._bands = tuple(bands)

    def classify(self, messages: Sequence[Message], embedding: Sequence[float] | None = None) -> Classification:
        features = Features.of(messages)
        fired = [rule for rule in self._rules if rule.fires(features)]
        z = sum(rule.weight for rule in fired) - self._bias
        score = 1.0 / (1.0 + math.exp(-z))
        return Classification(
            tier=tier_for_score(score, self._bands),
            score=score,
            signals=tuple(rule.name for rule in fired),
            strategy=self.name,
        )
