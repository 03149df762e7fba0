"""COSTMESH_WORKERS: several processes of one service on one port share its connections, and a
worker that dies is started again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest

from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.errors import ConfigError
from costmesh.rpc.workers import worker_env
from costmesh.server_settings import ServerSettings
from costmesh.tooling.launcher import free_port


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _classify_calls(metrics_port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith("costmesh_rpc_server_duration_seconds_count") and 'rpc_method="Classify"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _listeners(port: int) -> int:
    """Sockets listening on `port` (SO_REUSEPORT lets several processes each hold one)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def _wait(predicate, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def test_worker_settings():
    assert ServerSettings.load({}).workers == 1
    assert ServerSettings.load({"COSTMESH_WORKERS": "3"}).workers == 3
    with pytest.raises(ConfigError, match="COSTMESH_WORKERS"):
        ServerSettings.load({"COSTMESH_WORKERS": "0"})
    env = worker_env({"COSTMESH_METRICS_PORT": "9100", "COSTMESH_PORT": "50052"}, 2)
    assert env["COSTMESH_METRICS_PORT"] == "9102" and env["COSTMESH_PORT"] == "50052"
    assert env["COSTMESH_WORKER_INDEX"] == "2"


def test_two_workers_share_one_port_and_a_dead_one_comes_back(tmp_path):
    port, metrics = free_port(), free_port()
    env = {**os.environ, "COSTMESH_MESH_AUTH": "off",
           "COSTMESH_PORT": str(port), "COSTMESH_WORKERS": "2", "COSTMESH_METRICS_PORT": str(metrics),
           "COSTMESH_CLASSIFIER_STRATEGY": "rules", "COSTMESH_LOG_LEVEL": "warning"}
    log = open(tmp_path / "classifier.log", "wb")  # noqa: SIM115
    parent = subprocess.Popen([sys.executable, "-m", "costmesh.services.classifier"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _listeners(port) == 2 and _classify_calls(metrics) is not None
              and _classify_calls(metrics + 1) is not None)
        [child] = _children(parent.pid)
        request = classifier_pb2.ClassifyRequest(
            messages=[common.Message(role=common.ROLE_USER, content=[common.ContentPart(text="What is 2 + 2?")])])
        calls = 24
        for i in range(calls):  # one connection each: the kernel spreads connections over the workers
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                reply = classifier_pb2_grpc.ClassifierServiceStub(channel).Classify(request, timeout=30)
                assert reply.tier != common.TIER_UNSPECIFIED
        counts = _wait(lambda: (lambda a, b: (a, b) if a is not None and b is not None and a + b == calls else None)(
            _classify_calls(metrics), _classify_calls(metrics + 1)), 30)
        assert min(counts) > 0, f"one worker got every connection: {counts}"

        os.kill(child, signal.SIGKILL)
        restarted = _wait(lambda: [p for p in _children(parent.pid) if p != child])
        assert len(restarted) == 1
        _wait(lambda: _classify_calls(metrics + 1) == 0)  # the new worker serves (its counters start again)
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        log.close()
    assert parent.returncode == 0
    assert not re.search(r"Traceback", (tmp_path / "classifier.log").read_text())


def test_workers_need_a_fixed_port(tmp_path):
    env = {**os.environ, "COSTMESH_MESH_AUTH": "off",
           "COSTMESH_PORT": "0", "COSTMESH_WORKERS": "2", "COSTMESH_CLASSIFIER_STRATEGY": "rules",
           "COSTMESH_LOG_LEVEL": "warning"}
    result = subprocess.run([sys.executable, "-m", "costmesh.services.classifier"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "COSTMESH_WORKERS > 1 needs a fixed COSTMESH_PORT" in result.stdout + result.stderr
