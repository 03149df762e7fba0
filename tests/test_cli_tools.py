"""The `costmesh` command's surface: every subcommand's --help, and `costmesh serve`'s options."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from costmesh.errors import ConfigError
from costmesh.tooling import serve
from costmesh.tooling.cli import COMMANDS
from costmesh.tooling.eval.cli import LAYERS
from costmesh.tooling.report.command import DEFAULT_RECORDS_DIR


@pytest.mark.parametrize("argv", [[name] for name in COMMANDS] + [["eval", layer] for layer in LAYERS],
                         ids=" ".join)
def test_every_subcommand_help_exits_0(argv):
    done = subprocess.run([sys.executable, "-m", "costmesh.tooling.cli", *argv, "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: costmesh" in done.stdout


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("COSTMESH_PORT", "COSTMESH_HTTP_PORT", "COSTMESH_RECORDS_DIR", "COSTMESH_METRICS_PORT",
                 "COSTMESH_API_KEYS_FILE", "COSTMESH_TRACE_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_serve_defaults(clean_env):
    port, http_port, records = serve.settings(parse([]))
    assert (port, http_port) == (50051, 8080)
    assert records == Path(DEFAULT_RECORDS_DIR).resolve()  # where `costmesh report` looks by default


def test_serve_reads_the_environment(clean_env, tmp_path):
    clean_env.setenv("COSTMESH_PORT", "6000")
    clean_env.setenv("COSTMESH_HTTP_PORT", "0")
    clean_env.setenv("COSTMESH_RECORDS_DIR", str(tmp_path / "rec"))
    assert serve.settings(parse([])) == (6000, 0, tmp_path / "rec")


def test_serve_options_win_over_the_environment(clean_env, tmp_path):
    clean_env.setenv("COSTMESH_PORT", "6000")
    clean_env.setenv("COSTMESH_HTTP_PORT", "6001")
    clean_env.setenv("COSTMESH_RECORDS_DIR", str(tmp_path / "env"))
    args = parse(["--port", "7000", "--http-port", "7001", "--records-dir", str(tmp_path / "opt")])
    assert serve.settings(args) == (7000, 7001, tmp_path / "opt")


@pytest.mark.parametrize("argv", [["--port", "x"], ["--port", "70000"], ["--http-port", "-1"]])
def test_serve_rejects_bad_ports(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert argv[0] in capsys.readouterr().err


def test_serve_rejects_a_bad_port_in_the_environment(clean_env):
    clean_env.setenv("COSTMESH_PORT", "fifty")
    with pytest.raises(ConfigError, match="COSTMESH_PORT"):
        serve.settings(parse([]))


def test_serve_pins_the_gateway_port_and_prints_every_address(clean_env, tmp_path, capsys):
    """serve_forever hands the ports and records directory to start_mesh (stubbed) and prints them."""
    from costmesh.tooling.launcher import Mesh, Process

    calls = {}

    def fake_start_mesh(run_dir, extra_env=None, *, gateway_port=None, **_kw):
        calls.update(run_dir=run_dir, extra_env=extra_env, gateway_port=gateway_port)
        print("(starting)", flush=True)
        mesh = Mesh(Path(run_dir), {}, http_url=f"http://127.0.0.1:{extra_env['COSTMESH_HTTP_PORT']}/v1")
        mesh.processes["gateway"] = Process("gateway", None, f"127.0.0.1:{gateway_port}", Path(run_dir) / "g.log",
                                            metrics_port=9464)
        mesh._keys["demo"] = "cm-test-key"
        mesh.stop = lambda: None
        return mesh

    clean_env.setattr(serve, "start_mesh", fake_start_mesh)
    clean_env.setattr(serve.signal, "pause", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    clean_env.setattr(serve.signal, "signal", lambda *_a: None)
    logs = tmp_path / "logs"
    clean_env.setattr(serve.tempfile, "mkdtemp", lambda **_kw: (logs.mkdir(), str(logs))[1])
    records = tmp_path / "records"
    assert serve.serve_forever(6100, 6101, records) == 0
    assert calls["gateway_port"] == 6100
    assert calls["extra_env"] == {"COSTMESH_HTTP_PORT": "6101", "COSTMESH_RECORDS_DIR": str(records),
                                  "COSTMESH_METRICS_PORT": "0"}  # metrics on: every service's endpoint is shown
    assert "COSTMESH_PORT" not in calls["extra_env"]  # it would reach every service, not just the gateway
    out = capsys.readouterr().out
    assert out.index("starting the mesh") < out.index("(starting)")  # said before the minute of waiting
    for shown in ("127.0.0.1:6100", "http://127.0.0.1:6101/v1", "gateway    http://127.0.0.1:9464/metrics",
                  "cm-test-key", str(records), calls["run_dir"]):
        assert shown in out
    assert records.is_dir()
