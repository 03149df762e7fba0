"""Supervision (#19): a service process that dies under `costmesh serve` (the launcher) is
started again by itself, with a backoff, and its callers' channels reconnect within a second
of it being healthy again (it was never restarted; the providers' callers failed for ~10 s)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.config import Env
from costmesh.rpc.channels import peer_channel
from costmesh.rpc.mesh_auth import mesh_client_interceptors
from costmesh.tooling.launcher import Supervisor, _spawn, start_mesh


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def modules(tmp_path):
    """Two tiny `python -m` programs: one that runs until killed, one that exits at once."""
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(600)\n")
    (tmp_path / "crasher.py").write_text("raise SystemExit(3)\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_a_dead_process_is_started_again_with_a_doubling_delay(tmp_path, modules):
    reports: list[str] = []
    processes = {
        "sleeper": _spawn("sleeper", "sleeper", modules, tmp_path, "127.0.0.1:1"),
        "crasher": _spawn("crasher", "crasher", modules, tmp_path, "127.0.0.1:2"),
    }
    supervisor = Supervisor(processes, reports.append, poll_s=0.02, base_delay_s=0.2, max_delay_s=0.8, stable_s=60)
    supervisor.start()
    try:
        first = processes["sleeper"].popen.pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: processes["sleeper"].restarts == 1, 10, "the sleeper's restart")
        assert processes["sleeper"].popen.pid != first and processes["sleeper"].popen.poll() is None
        wait_for(lambda: processes["crasher"].restarts >= 4, 20, "the crasher's restarts")
    finally:
        supervisor.stop()
    delays = [float(line.split(" in ")[1].split(" s")[0]) for line in reports if line.startswith("crasher exited")]
    assert delays[:4] == [0.2, 0.4, 0.8, 0.8]  # doubling, capped
    assert any("sleeper exited with code -9" in line for line in reports)
    restarts = processes["crasher"].restarts
    time.sleep(0.5)
    assert processes["crasher"].restarts == restarts  # stopped: nothing restarts any more
    assert "restarted by the launcher" in (tmp_path / "sleeper.log").read_text()
    processes["sleeper"].stop()


def test_a_process_stopped_by_the_mesh_is_not_restarted(tmp_path, modules):
    process = _spawn("sleeper", "sleeper", modules, tmp_path, "127.0.0.1:1")
    supervisor = Supervisor({"sleeper": process}, lambda _line: None, poll_s=0.02, base_delay_s=0.05)
    supervisor.start()
    supervisor.stop()
    process.stop()
    time.sleep(0.2)
    assert process.restarts == 0 and process.popen.poll() is not None


def healthy(address: str) -> bool:
    """On a fresh channel each time, so this probe's own reconnect backoff never delays it."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


async def outage(stub, request, process, timeout_s: float = 120) -> tuple[int, float]:
    """Kill the process; call it every 0.1 s while it is away, as a busy caller would; once it is
    healthy again, how many calls failed and how long the caller's channel took to reach it."""
    os.kill(process.popen.pid, signal.SIGKILL)
    failed = 0
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(healthy, process.address):
        assert time.monotonic() < deadline, f"{process.name} did not come back"
        try:
            await stub.Classify(request, timeout=0.5)
        except grpc.aio.AioRpcError:
            failed += 1
        await asyncio.sleep(0.1)
    back = time.monotonic()
    while True:
        try:
            await stub.Classify(request, timeout=0.5)
            return failed, time.monotonic() - back
        except grpc.aio.AioRpcError:
            assert time.monotonic() - back < 30, "the caller did not reconnect"
            await asyncio.sleep(0.05)


async def test_a_killed_service_comes_back_and_its_callers_reconnect_at_once(tmp_path, redis_url):
    env = {"REDIS_URL": redis_url, "COSTMESH_CLASSIFIER_STRATEGY": "rules", "COSTMESH_LOG_LEVEL": "warning"}
    mesh = await asyncio.to_thread(start_mesh, tmp_path, env, use_simulator=False, only=("classifier",))
    try:
        assert set(mesh.processes) == {"classifier"}
        process = mesh.processes["classifier"]
        request = classifier_pb2.ClassifyRequest(
            messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text="What is 2 + 2?")])])
        # a caller as the mesh's own: a peer channel with service tokens
        async with peer_channel(process.address,
                                interceptors=mesh_client_interceptors(Env(mesh.env), "test")) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            assert (await stub.Classify(request, timeout=10)).tier

            failed, _ = await outage(stub, request, process)  # the launcher's own supervisor
            assert process.restarts == 1 and failed > 0
            assert "restarted by the launcher" in Path(process.log_path).read_text()

            # A longer outage (restarted after 8 s): gRPC's default reconnect backoff (1 s, x1.6
            # per failure) would leave this caller failing for seconds after the service is back.
            mesh.supervisor.stop()
            mesh.supervisor = Supervisor(mesh.processes, base_delay_s=8.0)
            mesh.supervisor.start()
            failed, reconnect_s = await outage(stub, request, process)
            assert process.restarts == 2 and failed > 0
        assert reconnect_s < 2.0, reconnect_s  # the mesh channels' reconnect backoff is at most a second
    finally:
        await asyncio.to_thread(mesh.stop)
