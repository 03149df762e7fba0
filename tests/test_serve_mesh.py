"""Spans and logs a person can use (#21), on the whole mesh as processes (as `costmesh serve` runs
it): progress while it starts (one line per service as it becomes healthy); a trace file
(COSTMESH_TRACE_FILE, `costmesh serve --trace-file`) holding every service's spans of a
request and no health-check span; `tenant_id` and `request_id` on every log line of a request
in every service, over HTTP as over gRPC; an upstream failure logged at `warning`."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request

import grpc
import pytest

from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.tooling.launcher import SERVICES, start_mesh
from costmesh.tooling.mesh_client import build_request

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("serve")
    trace_file = run_dir / "spans.jsonl"
    progress: list[str] = []
    env = {"COSTMESH_LOG_LEVEL": "info", "COSTMESH_TRACE_FILE": str(trace_file)}
    with start_mesh(run_dir, env, progress=progress.append) as mesh:
        yield mesh, progress, trace_file


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def log_lines(mesh) -> list[dict]:
    lines = []
    for process in mesh.processes.values():
        for raw in process.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append({**json.loads(raw), "_process": process.name})
    return lines


def spans(trace_file, trace_id: str, timeout_s: float = 10.0) -> list[dict]:
    """The file's spans of `trace_id` (waiting for the exporters' next flush)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [json.loads(line) for line in trace_file.read_text().splitlines()]
        mine = [span for span in found if span["context"]["trace_id"] == f"0x{trace_id}"]
        services = {span["resource"]["attributes"]["service.name"] for span in mine}
        if len(services) >= 5 or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


def test_progress_names_each_service_as_it_becomes_healthy(served):
    _, progress, _ = served
    assert progress[0].startswith("redis ready at redis://127.0.0.1:")
    assert progress[1].startswith("simulator ready at http://127.0.0.1:")
    healthy = [line.split()[0] for line in progress[2:]]
    assert sorted(healthy) == sorted(name for name, _, _ in SERVICES)  # each once
    assert all(" healthy at 127.0.0.1:" in line and line.endswith(" s)") for line in progress[2:])


def test_an_http_request_has_its_tenant_and_id_on_every_line_and_its_spans_in_the_file(served):
    mesh, _, trace_file = served
    trace_id, parent = traceparent()
    status, body = post(f"{mesh.http_url}/chat/completions",
                        {"model": "auto", "messages": [{"role": "user", "content": "Name a prime number."}],
                         "max_tokens": 50, "costmesh": {"request_id": "serve-http-1"}},
                        {"authorization": f"Bearer {mesh.api_key('logs-http')}", "traceparent": parent})
    assert status == 200, body
    time.sleep(1.0)  # the cache store goes after the answer
    mine = [line for line in log_lines(mesh) if line.get("trace_id") == trace_id]
    assert {line["_process"] for line in mine} >= {"gateway", "cache", "classifier", "router", "providers"}
    for line in mine:
        assert line.get("request_id") == "serve-http-1" and line.get("tenant_id") == "logs-http", line
    assert any(line["event"] == "answered" for line in mine) and any(line["event"] == "http" for line in mine)

    found = spans(trace_file, trace_id)
    services = {span["resource"]["attributes"]["service.name"] for span in found}
    assert services >= {"costmesh-gateway", "costmesh-cache", "costmesh-classifier", "costmesh-router",
                        "costmesh-providers"}
    assert any(span["name"] == "POST /v1/chat/completions" for span in found)


def test_a_grpc_request_too_and_no_health_check_spans(served):
    mesh, _, trace_file = served
    trace_id, parent = traceparent()
    request = build_request("Name a colour of the rainbow.", tenant="logs-grpc", max_tokens=50)
    request.request_id = "serve-grpc-1"
    with grpc.insecure_channel(mesh.gateway) as channel:
        reply = gateway_pb2_grpc.GatewayServiceStub(channel).Complete(
            request, timeout=120, metadata=(("authorization", f"Bearer {mesh.api_key('logs-grpc')}"),
                                            ("traceparent", parent)))
    assert reply.request_id == "serve-grpc-1"
    time.sleep(1.0)
    mine = [line for line in log_lines(mesh) if line.get("trace_id") == trace_id]
    assert {line["_process"] for line in mine} >= {"gateway", "cache", "classifier", "router", "providers"}
    for line in mine:
        assert line.get("request_id") == "serve-grpc-1" and line.get("tenant_id") == "logs-grpc", line
    assert spans(trace_file, trace_id)
    names = {json.loads(line)["name"] for line in trace_file.read_text().splitlines()}
    assert names and not [name for name in names if "grpc.health.v1" in name]  # the launcher checked health


def test_an_upstream_failure_is_a_warning(served):
    mesh, _, _ = served
    status, _ = post(f"{mesh.simulator_url}/_sim/faults", {"status": 500, "rate": 1.0}, {})
    assert status == 200
    trace_id, parent = traceparent()
    try:
        status, body = post(f"{mesh.http_url}/chat/completions",
                            {"model": "gpt-5-nano", "messages": [{"role": "user", "content": "Say hi."}],
                             "max_tokens": 20, "costmesh": {"cache": {"bypass": True}}},
                            {"authorization": f"Bearer {mesh.api_key('logs-fail')}", "traceparent": parent})
    finally:
        post(f"{mesh.simulator_url}/_sim/reset", {}, {})
    assert status >= 500, body
    mine = [line for line in log_lines(mesh) if line.get("trace_id") == trace_id]
    failed = [line for line in mine if line["event"] in ("rpc", "http")]
    assert {line["_process"] for line in failed} >= {"providers", "router", "gateway"}
    for line in failed:
        assert line["level"] == "warning" and line["tenant_id"] == "logs-fail", line
