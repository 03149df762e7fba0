"""Integration: the classifier gRPC service on port 0."""

from __future__ import annotations

import grpc
import pytest

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2
from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.rpc.server import start_service
from costmesh.services.classifier.service import SPEC


def message(text: str, role: int = common_pb2.ROLE_USER) -> common_pb2.Message:
    return common_pb2.Message(role=role, content=[common_pb2.ContentPart(text=text)])


@pytest.fixture(scope="module")
async def stub():
    service = await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off",
                                             "COSTMESH_CLASSIFIER_STRATEGY": "rules"}), port=0)
    channel = grpc.aio.insecure_channel(service.address)
    yield classifier_pb2_grpc.ClassifierServiceStub(channel)
    await channel.close()
    await service.stop(0)


async def test_classify_round_trip(stub):
    response = await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message("Hello!")]), timeout=5)
    assert response.tier == common_pb2.TIER_TRIVIAL
    assert 0 <= response.score < 0.2
    assert "greeting" in response.signals
    assert response.strategy == "rules"


async def test_classify_a_hard_prompt(stub):
    text = (
        "Design a distributed, fault-tolerant job scheduler. Compare leader election with Raft against "
        "a lease in Redis, analyze the trade-offs, and sketch the code:\n```go\nfunc schedule(job Job) error {\n```\n"
        "How do you keep it exactly-once? What happens on a network partition?"
    )
    request = classifier_pb2.ClassifyRequest(
        messages=[message("You are a staff engineer.", common_pb2.ROLE_SYSTEM), message(text)], strategy="rules"
    )
    response = await stub.Classify(request, timeout=5)
    assert response.tier == common_pb2.TIER_COMPLEX
    assert {"design", "code", "analysis"} <= set(response.signals)


async def test_empty_messages_is_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(classifier_pb2.ClassifyRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages" in err.value.details()


async def test_unknown_strategy_is_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message("hi")], strategy="oracle"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "strategy" in err.value.details()


async def test_unknown_default_strategy_fails_at_start():
    with pytest.raises(ConfigError):
        await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_CLASSIFIER_STRATEGY": "oracle"}), port=0)
