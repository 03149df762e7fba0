"""Log lines of a real gateway process: JSON, with tenant, request and trace ids; prompt and
answer text only when the operator turns COSTMESH_LOG_CONTENT on.

The gateway runs alone with unreachable peers: the cache and classifier fail open (each logs
a warning), the router call fails, so one request produces several log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from costmesh.tooling.launcher import free_port
from costmesh.tooling.mesh_client import build_request

SECRET = "the zebra password is hunter2"


def run_gateway_once(tmp_path, log_content: bool) -> list[dict]:
    port = free_port()
    env = {
        **os.environ,
        "COSTMESH_PORT": str(port),
        "COSTMESH_HOST": "127.0.0.1",
        "COSTMESH_CACHE_ADDR": "127.0.0.1:1",
        "COSTMESH_CLASSIFIER_ADDR": "127.0.0.1:1",
        "COSTMESH_ROUTER_ADDR": "127.0.0.1:1",
        "COSTMESH_AUTH": "off",
        "COSTMESH_HTTP_PORT": "0",
        "COSTMESH_LOG_LEVEL": "info",
        "COSTMESH_LOG_CONTENT": "true" if log_content else "false",
        "COSTMESH_RECORDS_DIR": str(tmp_path / "records"),
    }
    stderr = tmp_path / "gateway.log"
    with stderr.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "costmesh.gateway"], env=env, stdout=sink, stderr=sink)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            from costmesh.api.gateway.v1 import gateway_pb2_grpc

            request = build_request(f"Remember this: {SECRET}. What is 2+2?", tenant="logs-t")
            request.request_id = "req-log-1"
            with pytest.raises(grpc.RpcError) as failure:
                gateway_pb2_grpc.GatewayServiceStub(channel).Complete(request, timeout=30)
            assert failure.value.code() != grpc.StatusCode.OK
    finally:
        process.terminate()
        process.wait(30)
    lines = []
    for raw in stderr.read_text().splitlines():
        assert raw.startswith("{"), f"not a JSON log line: {raw!r}"
        lines.append(json.loads(raw))
    return lines


def test_log_lines_carry_tenant_request_and_trace_ids_and_no_text(tmp_path):
    lines = run_gateway_once(tmp_path, log_content=False)
    mine = [line for line in lines if line.get("request_id") == "req-log-1"]
    assert len(mine) >= 3, lines  # cache warning, classifier warning, the rpc access line
    assert {line["event"] for line in mine} >= {"rpc"}
    for line in mine:
        assert line["tenant_id"] == "logs-t"
        assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16
    assert len({line["trace_id"] for line in mine}) == 1
    assert not any(SECRET in json.dumps(line) for line in lines)
    records = list((tmp_path / "records").glob("costs-*.jsonl"))
    assert records and "req-log-1" in records[0].read_text()  # a failed request still leaves a record


def test_content_is_logged_only_when_turned_on(tmp_path):
    lines = run_gateway_once(tmp_path, log_content=True)
    content = [line for line in lines if line.get("event") == "content"]
    assert len(content) == 1 and SECRET in json.dumps(content[0])
    assert content[0]["request_id"] == "req-log-1"
