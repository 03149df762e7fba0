"""The shared bootstrap: health, reflection, the error table, streaming errors, SIGTERM."""

import os
import signal
import subprocess
import sys

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from costmesh import errors
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.config import Env
from costmesh.rpc.server import Mounted, Servicer, ServiceSpec, start_service
from costmesh.rpc.status import from_rpc_error, to_status
from costmesh.tooling.launcher import free_port


class FailingClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    async def Classify(self, request, context):
        strategy = request.strategy
        if strategy == "invalid":
            raise errors.InvalidRequest("strategy: no such strategy")
        if strategy == "limited":
            raise errors.RateLimited("slow down", retry_after_s=1.5)
        if strategy == "bug":
            raise ValueError("a bug with a secret in it")
        return classifier_pb2.ClassifyResponse(strategy="ok")


class FailingRouter(router_pb2_grpc.RouterServiceServicer):
    async def StreamExecute(self, request, context):
        yield router_pb2.StreamExecuteResponse(text_delta="partial")
        raise errors.UpstreamError("provider went away")


async def mount(runtime):
    return Mounted(
        [
            Servicer(classifier_pb2_grpc.add_ClassifierServiceServicer_to_server, FailingClassifier(),
                     "costmesh.classifier.v1.ClassifierService"),
            Servicer(router_pb2_grpc.add_RouterServiceServicer_to_server, FailingRouter(),
                     "costmesh.router.v1.RouterService"),
        ]
    )


@pytest.fixture
async def service():
    running = await start_service(ServiceSpec("test", 0, mount), Env({"COSTMESH_MESH_AUTH": "off"}), port=0)
    yield running
    await running.stop(0)


async def classify(address, strategy):
    async with grpc.aio.insecure_channel(address) as channel:
        return await classifier_pb2_grpc.ClassifierServiceStub(channel).Classify(
            classifier_pb2.ClassifyRequest(strategy=strategy), timeout=5
        )


async def test_errors_map_through_the_one_table(service):
    assert (await classify(service.address, "")).strategy == "ok"
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await classify(service.address, "invalid")
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.value.details() == "strategy: no such strategy"
    assert bad_request(invalid.value) == [("strategy", "no such strategy")]
    assert isinstance(from_rpc_error(invalid.value), errors.InvalidRequest)

    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await classify(service.address, "limited")
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    back = from_rpc_error(limited.value)
    assert isinstance(back, errors.RateLimited) and back.retry_after_s == pytest.approx(1.5)

    with pytest.raises(grpc.aio.AioRpcError) as bug:
        await classify(service.address, "bug")
    assert bug.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in bug.value.details()


async def test_a_stream_that_fails_midway_ends_with_the_mapped_status(service):
    async with grpc.aio.insecure_channel(service.address) as channel:
        call = router_pb2_grpc.RouterServiceStub(channel).StreamExecute(router_pb2.StreamExecuteRequest(), timeout=5)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for event in call:
                received.append(event.text_delta)
    assert received == ["partial"]
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def bad_request(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The field violations of the google.rpc.BadRequest detail of a failed call."""
    violations = []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    request = error_details_pb2.BadRequest()
                    detail.Unpack(request)
                    violations += [(v.field, v.description) for v in request.field_violations]
    return violations


def test_an_invalid_request_names_its_field_in_a_bad_request_detail():
    def violations(exc: Exception) -> list[tuple[str, str]]:
        status = status_pb2.Status.FromString(dict(to_status(exc).trailing_metadata)["grpc-status-details-bin"])
        out = []
        for detail in status.details:
            request = error_details_pb2.BadRequest()
            if detail.Unpack(request):
                out += [(v.field, v.description) for v in request.field_violations]
        return out

    invalid = errors.InvalidRequest("messages[2].content[0]: neither text nor image")
    assert to_status(invalid).details == "messages[2].content[0]: neither text nor image"  # the message as is
    assert violations(invalid) == [("messages[2].content[0]", "neither text nor image")]
    assert violations(errors.InvalidRequest("model: 'x' is not served: see ListModels")) == [
        ("model", "'x' is not served: see ListModels")  # split at the first ":" only
    ]
    for no_field in ("one of tags, entry_id, session_id or all is required", "results_offset, results_limit: >= 0"):
        assert violations(errors.InvalidRequest(no_field)) == []
    assert violations(errors.NotFound("model: unknown")) == []  # only invalid requests carry one


async def test_health_and_reflection(service):
    async with grpc.aio.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "costmesh.classifier.v1.ClassifierService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        reply = await call.read()
        services = {s.name for s in reply.list_services_response.service}
    assert {"costmesh.classifier.v1.ClassifierService", "grpc.health.v1.Health"} <= services


async def test_reflection_serves_the_protos_under_their_package_paths(service):
    """grpcurl and other reflection clients find a service's file (protos/costmesh/<domain>/v1/)
    and the files it imports, by symbol and by name."""
    async with grpc.aio.insecure_channel(service.address) as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="costmesh.router.v1.RouterService"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="costmesh/common/v1/common.proto"),
        ]))
        by_symbol, by_name = await call.read(), await call.read()
    files = {f.name: f for f in map(descriptor_pb2.FileDescriptorProto.FromString,
                                    by_symbol.file_descriptor_response.file_descriptor_proto)}
    router = files["costmesh/router/v1/router.proto"]
    assert router.package == "costmesh.router.v1" and list(router.dependency) == ["costmesh/common/v1/common.proto"]
    methods = {m.name: (m.input_type, m.output_type) for m in router.service[0].method}
    assert methods["StreamExecute"] == (".costmesh.router.v1.StreamExecuteRequest",
                                        ".costmesh.router.v1.StreamExecuteResponse")
    common = descriptor_pb2.FileDescriptorProto.FromString(by_name.file_descriptor_response.file_descriptor_proto[0])
    assert common.package == "costmesh.common.v1" and "CostBreakdown" in {m.name for m in common.message_type}


async def test_health_turns_not_serving_when_draining(service):
    async with grpc.aio.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await service.runtime.set_serving(False)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_service_process_stops_cleanly_on_sigterm():
    port = free_port()
    env = {**os.environ, "COSTMESH_PORT": str(port), "COSTMESH_HOST": "127.0.0.1", "COSTMESH_MESH_AUTH": "off"}
    process = subprocess.Popen([sys.executable, "-m", "costmesh.services.classifier"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read().decode()
        assert '"event": "shutting down"' in output
    finally:
        if process.poll() is None:
            process.kill()
