"""Router and cascade figures over a routing book, for `costmesh eval router` and training reports.

Routing alone: a strategy's prompt scores order the prompts (see `metrics`). The cascade:
every prompt first gets the weak model's recorded answer; the escalation score orders the
prompts, the top share is escalated to the strong model, and the cost counts the weak attempt
of every prompt plus the strong call of every escalated one, against all-strong.

Baselines, in the same run: `random` (the expectation over random orders) and `rules` (the
seed: its classifier score for routing; for the cascade the seed's heuristic gate first, its
classifier score breaking ties). For routing on a book whose rows carry a subject (MMLU), also
`subject`: a router told each prompt's subject, which scores it with its subject's mean gain
(strong - weak) over the rows the learned router was trained on. Real traffic carries no
subject; the baseline shows how much of a router's ordering is knowing the subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from costmesh.catalog import Catalog, ModelSpec, Tier
from costmesh.domain import Generation, Message, Role, Usage
from costmesh.errors import InvalidRequest
from costmesh.pricing import list_cost_of
from costmesh.routing.artifact import RouterArtifact
from costmesh.routing.cascade_score import escalation
from costmesh.routing.metrics import curve, random_curve, summary
from costmesh.tokens import count_tokens
from costmesh.tooling.datasets import BookRecord


def rules_scores(prompts: Sequence[str]) -> np.ndarray:
    from costmesh.services.classifier.rules import RulesStrategy

    rules = RulesStrategy()
    return np.array([rules.classify([Message.of(Role.USER, p)]).score for p in prompts])


def heuristic_gate_scores(prompts: Sequence[str], answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The seed gate's score (1 = nothing wrong) and whether it failed an answer outright."""
    from costmesh.services.router.gate import FACTORS, HARD_FAILURES, HeuristicGate

    gate = HeuristicGate()
    scores, hard = [], []
    for prompt, answer in zip(prompts, answers):
        messages = [Message.of(Role.USER, prompt)]
        reasons = gate.reasons(messages, Generation(text=answer, model="", provider=""))
        score = 1.0
        for reason in reasons:
            score *= FACTORS[reason]
        scores.append(score)
        hard.append(bool(HARD_FAILURES.intersection(reasons)))
    return np.array(scores), np.array(hard)


@dataclass(frozen=True)
class CascadeModels:
    weak: ModelSpec
    strong: ModelSpec

    @classmethod
    def of(cls, catalog: Catalog) -> "CascadeModels":
        """What the mesh does: the simple tier's first model, then the moderate tier's first model."""
        return cls(catalog.tier_models(Tier.SIMPLE)[0], catalog.tier_models(Tier.MODERATE)[0])


def call_costs(models: CascadeModels, records: Sequence[BookRecord]) -> tuple[np.ndarray, np.ndarray]:
    """List-price cost of each prompt's weak and strong call, from the recorded answers' tokens."""
    weak, strong = [], []
    for r in records:
        prompt_tokens = count_tokens(r.prompt) + 7  # chat framing, as the simulator counts it
        weak_out = count_tokens(r.weak_response or "")
        strong_out = count_tokens(r.strong_response) if r.strong_response is not None else weak_out
        weak.append(list_cost_of(models.weak, Usage(input_tokens=prompt_tokens, output_tokens=weak_out)).total_usd)
        strong.append(
            list_cost_of(models.strong, Usage(input_tokens=prompt_tokens, output_tokens=strong_out)).total_usd
        )
    return np.array(weak), np.array(strong)


def _cost_ratio(scores: np.ndarray, share: float, weak_cost: np.ndarray, strong_cost: np.ndarray) -> float:
    """(every weak attempt + the escalated prompts' strong calls) / all-strong, at `share` escalated."""
    n = len(scores)
    k = int(round(share * n))
    escalated = curve(scores, np.zeros(n), strong_cost).quality[k] * n  # expected over tie breaks
    return float((weak_cost.sum() + escalated) / strong_cost.sum())


def subject_prior_scores(reference: Sequence[BookRecord], records: Sequence[BookRecord],
                         shrink: float = 20.0) -> np.ndarray | None:
    """Each record's subject's mean gain (strong - weak) over `reference`, shrunk towards the
    overall mean by `shrink` pseudo-rows; None unless every row of both carries a subject."""
    if not reference or not records or any(r.subject is None for r in (*reference, *records)):
        return None
    overall = float(np.mean([r.strong_score - r.weak_score for r in reference]))
    totals: dict[str, list[float]] = {}
    for r in reference:
        total = totals.setdefault(r.subject or "", [0.0, 0.0])
        total[0] += r.strong_score - r.weak_score
        total[1] += 1
    prior = {name: (gain + shrink * overall) / (count + shrink) for name, (gain, count) in totals.items()}
    return np.array([prior.get(r.subject or "", overall) for r in records])


def route_report(scores: np.ndarray, rules: np.ndarray, weak: np.ndarray, strong: np.ndarray,
                 subject: np.ndarray | None = None) -> dict:
    result = summary(curve(scores, weak, strong))
    result["baselines"] = {"random": summary(random_curve(weak, strong)), "rules": summary(curve(rules, weak, strong))}
    if subject is not None:
        result["baselines"]["subject"] = summary(curve(subject, weak, strong))
    return result


def cascade_report(
    scores: np.ndarray,
    rules: np.ndarray,
    weak: np.ndarray,
    strong: np.ndarray,
    weak_cost: np.ndarray,
    strong_cost: np.ndarray,
) -> dict:
    def one(c, s):
        figures = summary(c)
        figures["cost_ratio"] = _cost_ratio(s, figures["premium_share_at_95"], weak_cost, strong_cost)
        return figures

    n = len(scores)
    result = one(curve(scores, weak, strong), scores)
    result["baselines"] = {
        "random": one(random_curve(weak, strong), np.zeros(n)),
        "rules": one(curve(rules, weak, strong), rules),
    }
    return result


def learned_prompt_scores(artifact: RouterArtifact, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    from costmesh.routing.scorer import prompt_scores

    return prompt_scores(artifact, prompts, embeddings)


def learned_escalations(
    artifact: RouterArtifact, records: Sequence[BookRecord], prompt_scores: np.ndarray, hard_failed: np.ndarray
) -> np.ndarray:
    return np.array(
        [
            escalation(artifact, r.prompt, r.weak_response or "", float(s), bool(h)).score
            for r, s, h in zip(records, prompt_scores, hard_failed)
        ]
    )


def evaluate(
    records: Sequence[BookRecord],
    *,
    strategy: str,
    cascade: bool,
    artifact: RouterArtifact | None,
    embeddings: np.ndarray | None,
    catalog: Catalog | None = None,
    reference: Sequence[BookRecord] = (),
) -> dict:
    """The figures of `costmesh eval router` for these rows (learned needs artifact and embeddings).
    `reference`: rows not evaluated (those the router was trained on), for the `subject` baseline."""
    if not records:
        raise InvalidRequest("book: no rows to evaluate")
    if strategy not in ("rules", "learned"):
        raise InvalidRequest(f"strategy: unknown strategy {strategy!r}; known: ['learned', 'rules']")
    prompts = [r.prompt for r in records]
    weak = np.array([r.weak_score for r in records])
    strong = np.array([r.strong_score for r in records])
    rules = rules_scores(prompts)
    learned = None
    if strategy == "learned":
        if artifact is None or embeddings is None:
            raise InvalidRequest("strategy: learned needs the router artifact and the prompts' embeddings")
        learned = learned_prompt_scores(artifact, prompts, embeddings)
    if not cascade:
        result = route_report(rules if learned is None else learned, rules, weak, strong,
                              subject_prior_scores(reference, records))
        result["mode"] = "routing"
    else:
        missing = sum(1 for r in records if r.weak_response is None)
        if missing:
            raise InvalidRequest(f"book: --cascade needs weak_response on every row; {missing} rows lack it")
        from costmesh.catalog import load_catalog

        models = CascadeModels.of(catalog or load_catalog())
        weak_cost, strong_cost = call_costs(models, records)
        heuristic, hard = heuristic_gate_scores(prompts, [r.weak_response or "" for r in records])
        seed = (1.0 - heuristic) * 10.0 + rules  # the heuristic gate first, the rules score breaks ties
        primary = seed if learned is None else learned_escalations(artifact, records, learned, hard)
        result = cascade_report(primary, seed, weak, strong, weak_cost, strong_cost)
        result["mode"] = "cascade"
        result["models"] = {"weak": models.weak.id, "strong": models.strong.id}
    result["strategy"] = strategy
    result["rows"] = len(records)
    return result
