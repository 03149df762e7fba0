"""The `learned` gate: the seed's heuristics, then the router artifact's escalation score.

On a math word problem the answer is read: its arithmetic re-evaluated, its final answer and
its use of the problem's numbers checked, and a trained model turns those checks and the
classifier's prompt score into P(the answer is not good enough). Elsewhere the classifier's
score decides, against the calibrated threshold. Only answers from tiers up to `max_tier`
(the cheap ones) are judged this way; stronger tiers get the heuristics alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from costmesh.catalog import Tier
from costmesh.domain import Generation, Message, last_user_text
from costmesh.routing.answer_checks import FEATURE_NAMES, math_checks
from costmesh.routing.cascade_score import escalation
from costmesh.routing.scorer import ArtifactSource

from .gate import HARD_FAILURES, HeuristicGate, Verdict


class LearnedGate:
    name = "learned"

    def __init__(self, source: ArtifactSource, heuristic: HeuristicGate, max_tier: Tier = Tier.SIMPLE):
        self._source = source
        self._heuristic = heuristic
        self._max_tier = max_tier

    async def check(
        self, messages: Sequence[Message], answer: Generation, *, score: float | None = None, tier: Tier | None = None
    ) -> Verdict:
        seed = await self._heuristic.check(messages, answer)
        if tier is not None and tier > self._max_tier:
            return seed
        artifact = self._source.current()
        prompt = last_user_text(messages)
        prompt_score = artifact.threshold if score is None else score
        hard = bool(HARD_FAILURES.intersection(seed.reasons))
        found = escalation(artifact, prompt, answer.text, prompt_score, hard)
        reasons = list(seed.reasons)
        if found.source == "answer_gate":
            checks = math_checks(prompt, answer.text)
            reasons += [n for n, v in zip(FEATURE_NAMES, checks.features()) if v >= 1.0 and n != "answer_log_words"]
        passed = found.score < 0
        if not passed:
            reasons.append(f"{found.source}: p={found.probability:.2f}")
        return Verdict(passed=passed, score=min(seed.score, 1.0 - found.probability), reasons=tuple(reasons))
