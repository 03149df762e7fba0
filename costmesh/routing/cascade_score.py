"""One escalation score for the cascade, shared by the router's gate and `eval router --cascade`.

For a math word problem (and an artifact with an answer gate) the score is the gate's
P(the answer is not good enough) from the answer's checks and the prompt score; for any other
prompt it is the prompt score itself (the classifier's confidence). Each is shifted by its own
calibrated threshold, so that one rule holds everywhere: escalate when the score is >= 0. An
answer the seed's heuristics reject outright (empty, refused, truncated, looping) always
escalates.
"""

from __future__ import annotations

from dataclasses import dataclass

from .answer_checks import is_math_problem
from .artifact import RouterArtifact
from .scorer import gate_scores

HARD_FAIL = 1.0  # the shifted score of an answer the heuristics reject


@dataclass(frozen=True)
class Escalation:
    score: float  # >= 0: escalate
    source: str  # "answer_gate", "prompt_score" or "heuristics"
    probability: float  # the unshifted probability the score came from


def escalation(
    artifact: RouterArtifact, prompt: str, answer: str, prompt_score: float, heuristics_failed: bool = False
) -> Escalation:
    if heuristics_failed:
        return Escalation(HARD_FAIL, "heuristics", 1.0)
    gate_threshold = artifact.gate_threshold
    if artifact.gate_model is not None and gate_threshold is not None and is_math_problem(prompt):
        p = float(gate_scores(artifact, [(prompt, answer, prompt_score)])[0])
        return Escalation(p - gate_threshold, "answer_gate", p)
    return Escalation(prompt_score - artifact.threshold, "prompt_score", prompt_score)
