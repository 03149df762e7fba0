"""The strategy interface, the score -> tier bands, and the name-selected `Classifier`.

A strategy turns a conversation into a `Classification`: a score in [0, 1], read as
P(the cheap model is not good enough), the tier it bands to, and the signals that fired.
Strategies are registered by name; the request or `COSTMESH_CLASSIFIER_STRATEGY` picks one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from opentelemetry import trace

from costmesh.admission import Admission
from costmesh.catalog import Tier
from costmesh.domain import Message, last_user_text
from costmesh.errors import ConfigError, InvalidRequest

# Upper score bound (exclusive) of each tier; COMPLEX takes everything above MODERATE's.
#   trivial  [0.00, 0.20)   simple [0.20, 0.45)   moderate [0.45, 0.70)   complex [0.70, 1.00]
DEFAULT_BANDS: tuple[tuple[Tier, float], ...] = (
    (Tier.TRIVIAL, 0.20),
    (Tier.SIMPLE, 0.45),
    (Tier.MODERATE, 0.70),
)


def tier_for_score(score: float, bands: Sequence[tuple[Tier, float]] = DEFAULT_BANDS) -> Tier:
    """The tier whose band holds `score`."""
    for tier, upper in bands:
        if score < upper:
            return tier
    return Tier.COMPLEX


@dataclass(frozen=True)
class Classification:
    tier: Tier
    score: float
    signals: tuple[str, ...]
    strategy: str
    # The prompt's embedding when this classifier computed it (none came in), and its model: the
    # caller reuses it instead of embedding the prompt again.
    embedding: tuple[float, ...] = ()
    embedding_model: str = ""
    threshold: float = 0.0  # the score threshold applied (a learned strategy's); 0: none


class Strategy(Protocol):
    """One way to classify. `embedding` is the cache's vector of the prompt, when it sent one."""

    name: str

    def classify(self, messages: Sequence[Message], embedding: Sequence[float] | None = None) -> Classification: ...


class PromptEmbedder(Protocol):
    """What `Classifier.aclassify` embeds a prompt with (e.g. `costmesh.embeddings.Embedder`)."""

    model_id: str
    dims: int
    loaded: bool

    def preload(self) -> None: ...

    async def embed_one(self, text: str) -> list[float]: ...


class Classifier:
    """Dispatches to a strategy by name (the request's, else the default).

    A strategy with `needs_embedding = True` gets the request's embedding when it has the
    strategy's `embedding_dims`, else one computed by `embedder` (in `aclassify`). A strategy with
    `has_threshold = True` gets the request's `threshold_offset` (a tenant's recalibrated routing
    threshold); the others ignore it.
    """

    def __init__(
        self,
        strategies: Mapping[str, Strategy],
        default: str = "rules",
        embedder: PromptEmbedder | None = None,
        max_inflight: int = 64,
    ):
        if default not in strategies:
            raise ConfigError(
                f"COSTMESH_CLASSIFIER_STRATEGY: unknown strategy {default!r}; known: {sorted(strategies)}"
            )
        self._strategies = dict(strategies)
        self.default = default
        self._embedder = embedder
        self.fallback = "rules"  # while the embedder loads, strategies that need it answer with this one
        self.embedded = 0  # prompts this classifier embedded itself (no usable embedding came in)
        # At most `max_inflight` classifications at once; the next is refused at once (Overloaded)
        # and the gateway goes on with its fallback tier instead of waiting past its deadline.
        self.admission = Admission("classifier", max_inflight)

    @property
    def names(self) -> list[str]:
        return sorted(self._strategies)

    def _chosen(self, messages: Sequence[Message], strategy: str) -> Strategy:
        if not messages:
            raise InvalidRequest("messages: at least one message is required")
        name = strategy or self.default
        chosen = self._strategies.get(name)
        if chosen is None:
            raise InvalidRequest(f"strategy: unknown strategy {name!r}; known: {self.names}")
        return chosen

    async def aclassify(
        self,
        messages: Sequence[Message],
        *,
        strategy: str = "",
        embedding: Sequence[float] | None = None,
        deadline_s: float | None = None,
        threshold_offset: float = 0.0,
    ) -> Classification:
        """`classify`, embedding the last user message first when the strategy needs it and none fits.
        Raises `Overloaded` at once when saturated (see `costmesh.admission`)."""
        chosen = self._chosen(messages, strategy)
        with self.admission.slot(deadline_s):
            return await self._aclassify(chosen, messages, embedding, threshold_offset)

    @staticmethod
    def _run(chosen: Strategy, messages: Sequence[Message], embedding: Sequence[float] | None,
             threshold_offset: float) -> Classification:
        if threshold_offset and getattr(chosen, "has_threshold", False):
            return chosen.classify(messages, embedding, threshold_offset=threshold_offset)  # type: ignore[call-arg]
        return chosen.classify(messages, embedding)

    async def _aclassify(self, chosen: Strategy, messages: Sequence[Message],
                         embedding: Sequence[float] | None, threshold_offset: float = 0.0) -> Classification:
        if getattr(chosen, "needs_embedding", False):
            dims = chosen.embedding_dims
            if not embedding or len(embedding) != dims:
                if self._embedder is None or self._embedder.dims != dims:
                    raise InvalidRequest(
                        f"embedding: strategy {chosen.name!r} needs a {dims}-dimension embedding and this "
                        "classifier has no embedder for it"
                    )
                if not self._embedder.loaded and self.fallback in self._strategies:
                    # The model is still loading: answer now with the fallback, never wait seconds.
                    self._embedder.preload()
                    result = self._strategies[self.fallback].classify(messages, None)
                    return self._finish(replace(result, signals=(*result.signals, "embedder_loading")))
                embedding = await self._embedder.embed_one(last_user_text(messages))
                self.embedded += 1
                result = self._run(chosen, messages, embedding, threshold_offset)
                return self._finish(replace(result, embedding=tuple(embedding),
                                            embedding_model=self._embedder.model_id))
        return self._finish(self._run(chosen, messages, embedding or None, threshold_offset))

    def classify(
        self,
        messages: Sequence[Message],
        *,
        strategy: str = "",
        embedding: Sequence[float] | None = None,
        threshold_offset: float = 0.0,
    ) -> Classification:
        chosen = self._chosen(messages, strategy)
        return self._finish(self._run(chosen, messages, embedding or None, threshold_offset))

    @staticmethod
    def _finish(result: Classification) -> Classification:
        span = trace.get_current_span()
        span.set_attribute("costmesh.tier", result.tier.name.lower())
        span.set_attribute("costmesh.complexity_score", result.score)
        span.set_attribute("costmesh.classifier.strategy", result.strategy)
        return result
