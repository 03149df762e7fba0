"""Wiring of the classifier service (its settings: `settings.ClassifierSettings`).

The default strategy is `learned` when the router artifact loads (re-read when the file
changes), else `rules`. With `learned` the default, the embedding model loads in the background
at start, for requests without the cache's embedding; until it is loaded such requests are
answered by `rules`, with the signal "embedder_loading".
"""

from __future__ import annotations

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.errors import ConfigError
from costmesh.model_files import ModelSettings
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.routing.scorer import ArtifactSource
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec
from costmesh.tokens import get_counter

from .lazy_embedder import LazyEmbedder
from .learned import LearnedStrategy
from .rules import RulesStrategy
from .servicer import ClassifierServicer
from .settings import ClassifierSettings
from .strategy import Classifier, Strategy

FULL_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def build_strategies(source: ArtifactSource | None = None) -> dict[str, Strategy]:
    """Every strategy this build knows, by name (`learned` only with an artifact)."""
    rules = RulesStrategy()
    strategies: dict[str, Strategy] = {rules.name: rules}
    if source is not None:
        learned = LearnedStrategy(source)
        strategies[learned.name] = learned
    return strategies


def _embedder_factory(model_id: str, threads: int = 0, backend: str = "onnx"):
    """What builds the artifact's embedding model: the local MiniLM, or the hashing encoder."""
    from costmesh.model_files import SENTENCE_MODEL_IDS, checked_model_id

    if model_id.startswith("hashing-bow-"):
        from costmesh.routing.hashing_encoder import HashingEncoder

        dims = int(model_id.rsplit("-", 1)[1])
        return lambda: HashingEncoder(dims)
    if model_id not in SENTENCE_MODEL_IDS:
        raise ConfigError(f"COSTMESH_ROUTER_ARTIFACT: it needs embedding model {model_id!r}; this build embeds with "
                          f"{list(SENTENCE_MODEL_IDS)} only")
    checked_model_id(model_id, backend)

    def build():
        from costmesh.embeddings import Embedder

        return Embedder(model_id=model_id, threads=threads, backend=backend)

    return build


async def mount(runtime: Runtime) -> Mounted:
    settings = ClassifierSettings.load(runtime.env)
    models = ModelSettings.load(runtime.env)
    artifact_path = settings.artifact or str(DEFAULT_ARTIFACT)
    source = None
    try:
        source = ArtifactSource(artifact_path, check_every_s=settings.artifact_check_s)
    except ConfigError as exc:
        runtime.log.warning("router artifact not loaded; the learned strategy is off", error=str(exc))
    default = settings.strategy or ("learned" if source is not None else "rules")
    embedder = None
    if source is not None:
        artifact = source.current()
        factory = _embedder_factory(artifact.embedding_model, models.torch_threads, models.model_backend)
        embedder = LazyEmbedder(factory, artifact.embedding_model, artifact.embedding_dims)
        preload = settings.preload_embedder
        if preload if preload is not None else default == "learned":
            embedder.preload()
    classifier = Classifier(build_strategies(source), default=default, embedder=embedder,
                            max_inflight=settings.max_inflight)
    get_counter()  # load the tokenizer (about a second) before serving, not on the first request
    runtime.log.info("classifier ready", default_strategy=default, strategies=classifier.names,
                     artifact=artifact_path if source else None)
    servicer = ClassifierServicer(classifier)
    close = embedder.aclose if embedder is not None else None
    return Mounted([Servicer(classifier_pb2_grpc.add_ClassifierServiceServicer_to_server, servicer, FULL_NAME)],
                   close=close)


SPEC = ServiceSpec("classifier", 50053, mount)
