"""`costmesh serve` starts the dashboard beside the mesh (its own process, on --dashboard-port,
its admin token in the run directory), prints its address, and stops it with the mesh."""

from __future__ import annotations

import argparse
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from costmesh.gateway.auth import KeyStore
from costmesh.tooling import serve
from costmesh.tooling.launcher import Mesh, Process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """serve_forever with start_mesh stubbed (no services), and the run directory in tmp_path."""
    for name in ("COSTMESH_DASHBOARD_PORT", "COSTMESH_ADMIN_TOKEN", "COSTMESH_ADMIN_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    keys = tmp_path / "api-keys.json"
    KeyStore(keys).create("acme", "web")

    def fake_start_mesh(run_dir, extra_env=None, *, gateway_port=None, **_kw):
        mesh = Mesh(Path(run_dir), {"COSTMESH_API_KEYS_FILE": str(keys)}, http_url=None)
        mesh.processes["gateway"] = Process("gateway", None, f"127.0.0.1:{gateway_port}", Path(run_dir) / "g.log")
        mesh._keys["demo"] = "cm-test-key"
        mesh.stop = lambda: None
        return mesh

    logs = tmp_path / "run"
    monkeypatch.setattr(serve, "start_mesh", fake_start_mesh)
    monkeypatch.setattr(serve.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(serve.tempfile, "mkdtemp", lambda **_kw: (logs.mkdir(), str(logs))[1])
    return monkeypatch, logs


def test_serve_runs_the_dashboard_until_the_mesh_stops(stubbed, tmp_path, capsys):
    monkeypatch, logs = stubbed
    port = free_port()
    seen = {}

    def while_serving():
        token = (logs / "admin-token").read_text().strip()
        seen["open"] = fetch(f"http://127.0.0.1:{port}/api/v1/keys")[0]
        seen["keys"] = fetch(f"http://127.0.0.1:{port}/api/v1/keys", token)
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.signal, "pause", while_serving)
    assert serve.serve_forever(6200, 0, tmp_path / "records", dashboard_port=port) == 0
    out = capsys.readouterr().out
    assert f"dashboard (admin):       http://127.0.0.1:{port}/dashboard (admin token in {logs / 'admin-token'})" in out
    assert seen["open"] == 401
    status, keys = seen["keys"]
    assert status == 200 and keys["managed"] and [k["tenant"] for k in keys["keys"]] == ["acme"]
    assert (logs / "admin-token").stat().st_mode & 0o777 == 0o600
    with pytest.raises(OSError):  # stopped with the mesh
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_busy_dashboard_port_leaves_the_mesh_serving(stubbed, tmp_path, capsys):
    monkeypatch, _ = stubbed
    monkeypatch.setattr(serve.signal, "pause", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve.serve_forever(6200, 0, tmp_path / "records",
                                   dashboard_port=taken.getsockname()[1]) == 0
    assert "dashboard: not started: the dashboard did not start on port" in capsys.readouterr().out


def test_the_dashboard_port_option_and_its_default(monkeypatch):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    calls = {}
    monkeypatch.setattr(serve, "serve_forever", lambda *a, **kw: calls.update(kw) or 0)
    monkeypatch.delenv("COSTMESH_DASHBOARD_PORT", raising=False)
    serve.run(parser.parse_args([]))
    assert calls["dashboard_port"] == 8090
    serve.run(parser.parse_args(["--dashboard-port", "0"]))
    assert calls["dashboard_port"] == 0
    monkeypatch.setenv("COSTMESH_DASHBOARD_PORT", "9191")
    serve.run(parser.parse_args([]))
    assert calls["dashboard_port"] == 9191
