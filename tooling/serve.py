"""`costmesh serve`: the mesh on this machine until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
from pathlib import Path

from costmesh.errors import ConfigError
from costmesh.tooling.dashboard.command import DEFAULT_PORT as DEFAULT_DASHBOARD_PORT
from costmesh.tooling.dashboard.process import dashboard_process
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.report.command import DEFAULT_RECORDS_DIR

DEFAULT_PORT = 50051
DEFAULT_HTTP_PORT = 8080


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return _port(raw)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"${name}: {exc}") from None


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=_port, default=None,
                        help=f"the gateway's gRPC port (default $COSTMESH_PORT or {DEFAULT_PORT}); "
                             "the other services take free loopback ports")
    parser.add_argument("--http-port", type=_port, default=None,
                        help="the gateway's OpenAI-compatible HTTP port "
                             f"(default $COSTMESH_HTTP_PORT or {DEFAULT_HTTP_PORT}; 0 turns it off)")
    parser.add_argument("--records-dir", default=None,
                        help="where the gateway writes one cost record per request, for `costmesh report` "
                             f"(default $COSTMESH_RECORDS_DIR or ./{DEFAULT_RECORDS_DIR})")
    parser.add_argument("--tls", action="store_true",
                        help="the gateway serves TLS (gRPC and HTTP): $COSTMESH_TLS_CERT_FILE/KEY_FILE, or a private "
                             "CA and certificate made in the run directory (clients trust its ca.pem); without it "
                             "the gateway serves plaintext on 127.0.0.1 only")
    parser.add_argument("--dashboard-port", type=_port, default=None,
                        help="the operators' dashboard (`costmesh dashboard`, admin token in the run directory) "
                             f"(default $COSTMESH_DASHBOARD_PORT or {DEFAULT_DASHBOARD_PORT}; 0 turns it off)")


def settings(args) -> tuple[int, int, Path]:
    """The gateway port, the HTTP port and the records directory: the option, else the
    environment variable, else the default."""
    port = args.port if args.port is not None else _env_port("COSTMESH_PORT", DEFAULT_PORT)
    http_port = args.http_port if args.http_port is not None else _env_port("COSTMESH_HTTP_PORT", DEFAULT_HTTP_PORT)
    records_dir = Path(args.records_dir or os.environ.get("COSTMESH_RECORDS_DIR") or DEFAULT_RECORDS_DIR)
    return port, http_port, records_dir.resolve()


def run(args) -> int:
    port, http_port, records_dir = settings(args)
    dashboard_port = getattr(args, "dashboard_port", None)
    if dashboard_port is None:
        dashboard_port = _env_port("COSTMESH_DASHBOARD_PORT", DEFAULT_DASHBOARD_PORT)
    return serve_forever(port, http_port, records_dir, dashboard_port=dashboard_port,
                         tls=bool(getattr(args, "tls", False)))


def serve_forever(port: int = DEFAULT_PORT, http_port: int = DEFAULT_HTTP_PORT,
                  records_dir: Path | None = None, *, dashboard_port: int = 0, tls: bool = False) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    records_dir = Path(records_dir or DEFAULT_RECORDS_DIR).resolve()
    records_dir.mkdir(parents=True, exist_ok=True)
    # The logs outlive the session (they are what tells why a service stopped).
    log_dir = tempfile.mkdtemp(prefix="costmesh-serve-")
    print("costmesh serve: starting the mesh... (about a minute the first time)", flush=True)
    extra_env = {"COSTMESH_HTTP_PORT": str(http_port), "COSTMESH_RECORDS_DIR": str(records_dir)}
    with start_mesh(log_dir, extra_env, gateway_port=port or None, tls=tls) as mesh:
        print(f"costmesh gateway (gRPC): {mesh.gateway}" + (" (TLS)" if mesh.ca_file else ""), flush=True)
        print(f"OpenAI-compatible API:   {mesh.http_url or 'off (--http-port 0)'}", flush=True)
        if mesh.ca_file:
            print(f"TLS: clients trust {mesh.ca_file} (Python: Client(..., ca_file=...); curl --cacert)", flush=True)
        metrics = {name: p.metrics_port for name, p in mesh.processes.items() if p.metrics_port}
        if metrics:
            print("metrics (Prometheus):    "
                  + ", ".join(f"{name} 127.0.0.1:{port}" for name, port in metrics.items()), flush=True)
        print(f"API key for tenant 'demo': {mesh.api_key('demo')}", flush=True)
        print(f"cost records: {records_dir} (`costmesh report --records-dir {records_dir}`)", flush=True)
        print(f"logs: {log_dir} (kept after exit); Ctrl-C stops the mesh", flush=True)
        print("a service that dies is started again by itself; the services sign their calls to each other "
              f"with the mesh secret {mesh.env.get('COSTMESH_MESH_SECRET_FILE', '(none)')}", flush=True)
        with contextlib.ExitStack() as stack:
            if dashboard_port:
                token_file = Path(log_dir) / "admin-token"
                try:
                    url = stack.enter_context(dashboard_process(
                        dashboard_port, records_dir, mesh.env.get("COSTMESH_API_KEYS_FILE"), token_file,
                        Path(log_dir) / "dashboard.log"))
                    print(f"dashboard (admin):       {url} (admin token in {token_file})", flush=True)
                except ConfigError as exc:  # the mesh serves on without it
                    print(f"dashboard: not started: {exc}", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
    return 0
