"""The `learned` strategy: P(the cheap model is not good enough) from the prompt's MiniLM
embedding, its nearest training prompts, its words and a few text statistics, with the
ensemble trained by `costmesh train-router` (numpy only; a millisecond or two a prompt).

The embedding is the cache's when the request carries one of the right size, else the
classifier computes it (`Classifier.aclassify` does that off the event loop). The tiers are
the artifact's calibrated bands of the score: at or above the operating point's threshold a
prompt starts on the strong tiers (moderate, complex), except a math word problem when the
artifact has an answer gate: it starts on the simple tier, and the router's gate reads the
cheap answer (the cascade is what works on such problems; see `costmesh eval router --cascade`).

A request may move the threshold (`threshold_offset`: a tenant's own, recalibrated by the
gateway from shadow checks of its cheap answers, issue 22): the threshold applied is the
artifact's plus the offset, within [0, 1], and the bands move with it (the trivial band ends at it
at the latest, the moderate band at it at the earliest), so a prompt scoring at or above it
starts on the strong tiers and one below on the cheap ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from costmesh.catalog import Tier
from costmesh.domain import Message, last_user_text
from costmesh.errors import InvalidRequest
from costmesh.routing.answer_checks import is_math_problem
from costmesh.routing.scorer import ArtifactSource, prompt_scores

from .strategy import Classification, tier_for_score

_TIERS = (Tier.TRIVIAL, Tier.SIMPLE, Tier.MODERATE)


def moved_bands(bands: Sequence[float], threshold: float) -> tuple[float, float, float]:
    """The trivial, simple and moderate upper bounds with the simple band ending at `threshold`."""
    trivial, _simple, moderate = bands
    return min(trivial, threshold), threshold, max(moderate, threshold)


class LearnedStrategy:
    name = "learned"
    needs_embedding = True
    has_threshold = True  # takes a request's threshold_offset

    def __init__(self, source: ArtifactSource):
        self._source = source

    @property
    def embedding_dims(self) -> int:
        return self._source.current().embedding_dims

    @property
    def embedding_model(self) -> str:
        return self._source.current().embedding_model

    def classify(self, messages: Sequence[Message], embedding: Sequence[float] | None = None, *,
                 threshold_offset: float = 0.0) -> Classification:
        artifact = self._source.current()
        if embedding is None or len(embedding) != artifact.embedding_dims:
            got = 0 if embedding is None else len(embedding)
            raise InvalidRequest(
                f"embedding: the learned strategy needs a {artifact.embedding_dims}-dimension "
                f"{artifact.embedding_model} embedding, got {got} values"
            )
        prompt = last_user_text(messages)
        score = float(prompt_scores(artifact, [prompt], [list(embedding)])[0])
        threshold, bands = artifact.threshold, tuple(artifact.bands)
        if threshold_offset:
            threshold = min(1.0, max(0.0, threshold + threshold_offset))
            bands = moved_bands(bands, threshold)
        tier = tier_for_score(score, tuple(zip(_TIERS, bands)))
        signals: tuple[str, ...] = ("learned", f"threshold={threshold:.3f}")
        if threshold_offset:
            signals += (f"tenant_threshold_offset={threshold_offset:+.3f}",)
        if tier > Tier.SIMPLE and artifact.gate_model is not None and is_math_problem(prompt):
            # A word problem's difficulty shows in the cheap model's answer, not in the prompt:
            # start cheap and let the router's answer gate decide.
            tier = Tier.SIMPLE
            signals += ("math_cascade",)
        return Classification(tier=tier, score=score, signals=signals, strategy=self.name, threshold=threshold)
