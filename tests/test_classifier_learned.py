"""The `learned` classifier strategy: scores from the artifact, the request's embedding or its
own, the fallback while the embedder loads, math problems left to the cascade, and the service
reloading a changed artifact without a restart."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
import numpy as np
import pytest

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2
from costmesh.catalog import Tier
from costmesh.config import Env
from costmesh.domain import Message, Role
from costmesh.errors import ConfigError, InvalidRequest
from costmesh.routing.artifact import load_artifact
from costmesh.routing.hashing_encoder import HashingEncoder
from costmesh.routing.scorer import ArtifactSource, prompt_scores
from costmesh.rpc.server import start_service
from costmesh.services.classifier.lazy_embedder import LazyEmbedder
from costmesh.services.classifier.learned import LearnedStrategy
from costmesh.services.classifier.rules import RulesStrategy
from costmesh.services.classifier.service import SPEC
from costmesh.services.classifier.strategy import Classifier
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.routing.train import Book, TrainConfig, train

ENCODER = HashingEncoder()
MMLU_PROMPT = ("Which of the following is a primary function of the Federal Reserve?\nA. Printing money\n"
               "B. Setting monetary policy\nC. Collecting taxes\nD. Writing laws\nAnswer:")
MATH_PROMPT = ("Jack had $100. Sophia gave him 1/5 of her $100 and then he spent 30 dollars on books. "
               "How many dollars does Jack have now?")


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory):
    books = [Book("mmlu", load_book(data_dir() / "mmlu_routing_dev.jsonl.gz", limit=300)),
             Book("gsm8k", load_book(data_dir() / "gsm8k_routing_dev.jsonl.gz", limit=300))]
    artifact, _ = train(books, config=TrainConfig(k=10), embedding_model=ENCODER.model_id, encode=ENCODER.encode,
                        use_cache=False)
    return artifact.save(tmp_path_factory.mktemp("router") / "router.npz")


def with_threshold(path, threshold: float) -> None:
    """Rewrite the artifact at `path` with another operating point (and a newer mtime)."""
    artifact = load_artifact(path)
    artifact.meta["calibration"]["threshold"] = threshold
    artifact.meta["calibration"]["bands"] = [threshold / 2, threshold, threshold + (1 - threshold) / 2]
    artifact.save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))


class Loaded:
    """A loaded embedder around the hashing encoder, counting its calls."""

    loaded = True

    def __init__(self):
        self.model_id, self.dims, self.calls = ENCODER.model_id, ENCODER.dims, 0

    def preload(self) -> None:
        pass

    async def embed_one(self, text: str) -> list[float]:
        self.calls += 1
        return ENCODER.encode([text])[0]


def user(text: str) -> list[Message]:
    return [Message.of(Role.USER, text)]


def test_learned_score_is_the_artifacts_and_the_tier_its_band(artifact_path):
    source = ArtifactSource(artifact_path)
    artifact = source.current()
    result = LearnedStrategy(source).classify(user(MMLU_PROMPT), ENCODER.encode([MMLU_PROMPT])[0])
    expected = prompt_scores(artifact, [MMLU_PROMPT], np.asarray(ENCODER.encode([MMLU_PROMPT])))[0]
    assert result.score == pytest.approx(expected)
    assert result.strategy == "learned"
    band = int(np.searchsorted(artifact.bands, result.score, side="right"))
    assert result.tier == (Tier.TRIVIAL, Tier.SIMPLE, Tier.MODERATE, Tier.COMPLEX)[band]


def test_a_wrong_sized_embedding_is_refused_naming_the_field(artifact_path):
    with pytest.raises(InvalidRequest, match="embedding"):
        LearnedStrategy(ArtifactSource(artifact_path)).classify(user(MMLU_PROMPT), [0.1] * 7)


async def test_the_requests_embedding_is_used_else_the_classifier_embeds(artifact_path):
    embedder = Loaded()
    strategies = {"rules": RulesStrategy(), "learned": LearnedStrategy(ArtifactSource(artifact_path))}
    classifier = Classifier(strategies, default="learned", embedder=embedder)
    given = await classifier.aclassify(user(MMLU_PROMPT), embedding=ENCODER.encode([MMLU_PROMPT])[0])
    assert embedder.calls == 0 and classifier.embedded == 0
    computed = await classifier.aclassify(user(MMLU_PROMPT))
    assert embedder.calls == 1 and classifier.embedded == 1
    assert computed.score == pytest.approx(given.score)
    # What it computed goes back to the caller (who stores the answer with it); what came in does not.
    assert given.embedding == () and given.embedding_model == ""
    assert len(computed.embedding) == ENCODER.dims and computed.embedding_model == embedder.model_id
    short = await classifier.aclassify(user(MMLU_PROMPT), embedding=[0.5] * 12)  # another model's size
    assert embedder.calls == 2 and short.score == pytest.approx(given.score)


async def test_rules_answer_while_the_embedder_loads(artifact_path):
    def slow_factory():
        time.sleep(0.3)
        return HashingEncoder()

    lazy = LazyEmbedder(slow_factory, ENCODER.model_id, ENCODER.dims)
    strategies = {"rules": RulesStrategy(), "learned": LearnedStrategy(ArtifactSource(artifact_path))}
    classifier = Classifier(strategies, default="learned", embedder=lazy)
    first = await classifier.aclassify(user(MMLU_PROMPT))
    assert first.strategy == "rules" and "embedder_loading" in first.signals
    for _ in range(50):
        if lazy.loaded:
            break
        await asyncio.sleep(0.05)
    assert lazy.loaded
    later = await classifier.aclassify(user(MMLU_PROMPT))
    assert later.strategy == "learned" and classifier.embedded == 1


async def test_a_requests_threshold_offset_moves_the_threshold_and_the_bands(artifact_path, tmp_path):
    """A tenant's recalibrated threshold (issue 22): the artifact's plus the request's offset; a prompt
    that started cheap starts on the strong tiers once the threshold falls under its score. Rules
    take no offset."""
    path = tmp_path / "high.npz"
    path.write_bytes(artifact_path.read_bytes())
    with_threshold(path, 0.99)  # every prompt scores under it: all start cheap
    strategies = {"rules": RulesStrategy(), "learned": LearnedStrategy(ArtifactSource(path))}
    classifier = Classifier(strategies, default="learned", embedder=Loaded())
    plain = await classifier.aclassify(user(MMLU_PROMPT))
    assert plain.tier <= Tier.SIMPLE and plain.threshold == pytest.approx(0.99)
    offset = plain.score - 0.99 - 0.01  # the threshold just under the prompt's score
    moved = await classifier.aclassify(user(MMLU_PROMPT), threshold_offset=offset)
    assert moved.score == pytest.approx(plain.score) and moved.threshold == pytest.approx(plain.score - 0.01)
    assert moved.tier >= Tier.MODERATE and any(s.startswith("tenant_threshold_offset=") for s in moved.signals)
    floor = await classifier.aclassify(user(MMLU_PROMPT), threshold_offset=-5.0)
    assert floor.threshold == 0.0 and floor.tier >= Tier.MODERATE
    rules = await classifier.aclassify(user(MMLU_PROMPT), strategy="rules", threshold_offset=-5.0)
    assert rules.threshold == 0.0 and rules.tier == classifier.classify(user(MMLU_PROMPT), strategy="rules").tier


def test_math_problems_start_cheap_for_the_answer_gate(artifact_path, tmp_path):
    path = tmp_path / "low.npz"
    path.write_bytes(artifact_path.read_bytes())
    with_threshold(path, 1e-6)  # every prompt scores above: all would start on the strong tiers
    strategy = LearnedStrategy(ArtifactSource(path))
    math = strategy.classify(user(MATH_PROMPT), ENCODER.encode([MATH_PROMPT])[0])
    other = strategy.classify(user(MMLU_PROMPT), ENCODER.encode([MMLU_PROMPT])[0])
    assert math.tier == Tier.SIMPLE and "math_cascade" in math.signals
    assert other.tier >= Tier.MODERATE and "math_cascade" not in other.signals


def message(text: str) -> common_pb2.Message:
    return common_pb2.Message(role=common_pb2.ROLE_USER, content=[common_pb2.ContentPart(text=text)])


async def test_service_defaults_to_learned_and_reloads_a_changed_artifact(artifact_path, tmp_path):
    path = tmp_path / "served.npz"
    path.write_bytes(artifact_path.read_bytes())
    with_threshold(path, 0.999)
    env = Env({"COSTMESH_MESH_AUTH": "off",
               "COSTMESH_ROUTER_ARTIFACT": str(path), "COSTMESH_ROUTER_ARTIFACT_CHECK_S": "0"})
    service = await start_service(SPEC, env, port=0)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            request = classifier_pb2.ClassifyRequest(messages=[message(MMLU_PROMPT)],
                                                     embedding=ENCODER.encode([MMLU_PROMPT])[0])
            before = await stub.Classify(request, timeout=5)
            assert before.strategy == "learned"
            assert before.tier in (common_pb2.TIER_TRIVIAL, common_pb2.TIER_SIMPLE)
            with_threshold(path, 1e-6)
            after = await stub.Classify(request, timeout=5)
            assert after.tier in (common_pb2.TIER_MODERATE, common_pb2.TIER_COMPLEX)
            assert after.score == pytest.approx(before.score)
            # No embedding in the request: the service embeds (hashing encoder, per the artifact).
            bare = await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message(MMLU_PROMPT)]), timeout=5)
            for _ in range(20):
                if bare.strategy == "learned":
                    break
                await asyncio.sleep(0.05)
                bare = await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message(MMLU_PROMPT)]), timeout=5)
            assert bare.strategy == "learned" and bare.score == pytest.approx(before.score)
    finally:
        await service.stop(0)


async def test_service_refuses_an_artifact_for_an_unknown_embedding_model(artifact_path, tmp_path):
    artifact = load_artifact(artifact_path)
    artifact.meta["embedding"]["model"] = "some-other-model"
    path = artifact.save(tmp_path / "other.npz")
    with pytest.raises(ConfigError, match="some-other-model"):
        await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_ROUTER_ARTIFACT": str(path)}), port=0)


async def test_service_without_an_artifact_serves_rules(tmp_path):
    env = Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_ROUTER_ARTIFACT": str(tmp_path / "none.npz")})
    service = await start_service(SPEC, env, port=0)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            response = await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message("Hello!")]), timeout=5)
            assert response.strategy == "rules"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message("hi")], strategy="learned"),
                                    timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await service.stop(0)
