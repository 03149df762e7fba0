"""`costmesh serve` (#21): --keys-file keeps the API keys across restarts (created when missing,
never deleted; tenant 'demo''s key minted and shown only when the file has none), every address
in one summary once ready (gRPC, HTTP, each service's metrics, the dashboard, Redis, the
upstream), --trace-file and the metrics handed to every service. start_mesh is stubbed here
(as the launcher would: the key file created, the keys minted into it); the real mesh's
progress lines and trace file are in test_serve_mesh.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from costmesh.gateway.auth import KeyStore
from costmesh.tooling import serve
from costmesh.tooling.launcher import Mesh, Process


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """serve_forever with start_mesh stubbed; returns the calls it got and the run directories."""
    for name in ("COSTMESH_API_KEYS_FILE", "COSTMESH_TRACE_FILE", "COSTMESH_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    calls: list[dict] = []
    runs = iter(range(100))

    def fake_start_mesh(run_dir, extra_env=None, *, gateway_port=None, progress=None, **_kw):
        env = {**(extra_env or {})}
        env.setdefault("COSTMESH_API_KEYS_FILE", str(Path(run_dir) / "api-keys.json"))
        KeyStore(env["COSTMESH_API_KEYS_FILE"]).ensure_file()
        env["REDIS_URL"] = "redis://127.0.0.1:6390"
        calls.append({"extra_env": extra_env, "gateway_port": gateway_port})
        for name in ("redis", "cache", "gateway"):
            progress(f"{name} healthy at 127.0.0.1:1 (0.1 s)")
        mesh = Mesh(Path(run_dir), env, http_url="http://127.0.0.1:6101/v1", simulator_url="http://127.0.0.1:7000")
        for i, name in enumerate(("cache", "gateway")):
            mesh.processes[name] = Process(name, None, f"127.0.0.1:{6100 + 10 * i}", Path(run_dir) / f"{name}.log",
                                           metrics_port=9400 + i)
        mesh.stop = lambda: None
        return mesh

    def mkdtemp(**_kw):
        path = tmp_path / f"run{next(runs)}"
        path.mkdir()
        return str(path)

    monkeypatch.setattr(serve, "start_mesh", fake_start_mesh)
    monkeypatch.setattr(serve.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(serve.signal, "pause", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    monkeypatch.setattr(serve.tempfile, "mkdtemp", mkdtemp)
    return calls


def demo_key(out: str) -> str | None:
    for line in out.splitlines():
        if line.startswith("API key for tenant 'demo': "):
            return line.split(": ", 1)[1].split()[0]
    return None


def test_a_keys_file_keeps_the_keys_across_restarts(stubbed, tmp_path, capsys):
    keys = tmp_path / "keys" / "api-keys.json"  # neither the file nor its directory exists yet
    assert serve.serve_forever(6100, 6101, tmp_path / "records", keys_file=keys) == 0
    first = capsys.readouterr().out
    key = demo_key(first)
    assert key and f"(saved in {keys})" in first
    assert stubbed[0]["extra_env"]["COSTMESH_API_KEYS_FILE"] == str(keys)
    assert keys.exists() and KeyStore(keys).lookup(key).tenant == "demo"  # still there after the mesh stopped

    assert serve.serve_forever(6100, 6101, tmp_path / "records", keys_file=keys) == 0
    second = capsys.readouterr().out
    assert demo_key(second) is None  # no new key: the one shown the first time still works
    assert f"API keys:                {keys} (kept across restarts" in second
    assert KeyStore(keys).lookup(key) is not None
    assert sorted(r.role for r in KeyStore(keys).records()) == ["admin", "tenant"]  # demo's, the dashboard's


def test_without_a_keys_file_each_start_gets_a_fresh_key_in_its_run_directory(stubbed, tmp_path, capsys):
    serve.serve_forever(6100, 6101, tmp_path / "records")
    serve.serve_forever(6100, 6101, tmp_path / "records")
    keys = [demo_key(part) for part in capsys.readouterr().out.split("starting the mesh")[1:]]
    assert all(keys) and keys[0] != keys[1]
    assert all("COSTMESH_API_KEYS_FILE" not in call["extra_env"] for call in stubbed)


def test_progress_then_a_summary_of_every_address(stubbed, tmp_path, capsys):
    trace = tmp_path / "spans.jsonl"
    serve.serve_forever(6100, 6101, tmp_path / "records", trace_file=trace)
    out = capsys.readouterr().out
    lines = out.splitlines()
    progress = [line for line in lines if "healthy at" in line]
    assert progress == [f"  {name} healthy at 127.0.0.1:1 (0.1 s)" for name in ("redis", "cache", "gateway")]
    ready = lines.index("costmesh is ready:")
    assert ready > lines.index(progress[-1])  # the summary comes once everything is up
    summary = "\n".join(lines[ready:])
    for shown in ("costmesh gateway (gRPC): 127.0.0.1:6110",
                  "OpenAI-compatible API:   http://127.0.0.1:6101/v1 (Anthropic Messages: http://127.0.0.1:6101/v1/messages)",
                  "metrics (Prometheus):    cache      http://127.0.0.1:9400/metrics",
                  "                         gateway    http://127.0.0.1:9401/metrics",
                  "dashboard (admin):       http://127.0.0.1:6101/dashboard (sign in with the admin key)",
                  "redis:                   redis://127.0.0.1:6390",
                  "providers:               the simulator at http://127.0.0.1:7000",
                  f"traces: {trace}", f"cost records: {tmp_path / 'records'}"):
        assert shown in summary, shown
    extra_env = stubbed[0]["extra_env"]
    assert extra_env["COSTMESH_TRACE_FILE"] == str(trace) and extra_env["COSTMESH_METRICS_PORT"] == "0"


def test_the_keys_file_and_trace_file_options_and_their_environment(monkeypatch, tmp_path):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    calls = {}
    monkeypatch.setattr(serve, "serve_forever", lambda *a, **kw: calls.update(kw) or 0)
    for name in ("COSTMESH_API_KEYS_FILE", "COSTMESH_TRACE_FILE"):
        monkeypatch.delenv(name, raising=False)
    serve.run(parser.parse_args([]))
    assert calls["keys_file"] is None and calls["trace_file"] is None
    serve.run(parser.parse_args(["--keys-file", "k.json", "--trace-file", "t.jsonl"]))
    assert (calls["keys_file"], calls["trace_file"]) == ("k.json", "t.jsonl")
    monkeypatch.setenv("COSTMESH_API_KEYS_FILE", "/etc/costmesh/keys.json")
    monkeypatch.setenv("COSTMESH_TRACE_FILE", "/tmp/spans.jsonl")
    serve.run(parser.parse_args([]))
    assert (calls["keys_file"], calls["trace_file"]) == ("/etc/costmesh/keys.json", "/tmp/spans.jsonl")
    assert json.dumps(calls, default=str)  # plain values
