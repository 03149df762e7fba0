"""`costmesh serve`: the mesh on this machine until interrupted.

While it starts it prints one line per service as it becomes healthy; once ready, every address
(gRPC, HTTP, each service's metrics, the dashboard the gateway serves on its HTTP port), the API
key file and the records directory. `--keys-file` keeps the API keys across restarts (created
when missing, never deleted): a tenant 'demo' key and an admin key (the dashboard's) are each
minted and shown only when the file has none. `--trace-file` appends every service's spans to
one file, one JSON object per line (no Jaeger needed)."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
from pathlib import Path

from costmesh.errors import ConfigError
from costmesh.gateway.auth import ADMIN_ROLE, KeyStore
from costmesh.tooling.launcher import Mesh, start_mesh
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
    parser.add_argument("--keys-file", default=None,
                        help="the gateway's API key file, kept across restarts: created when missing, never "
                             "deleted; a key for tenant 'demo' and an admin key (the dashboard's) are minted "
                             "only when it has none (default $COSTMESH_API_KEYS_FILE, else a new file in the "
                             "run directory each start)")
    parser.add_argument("--trace-file", default=None,
                        help="append every service's spans to this file, one JSON object per line (the "
                             "OpenTelemetry SDK's span JSON), for a look at traces without Jaeger "
                             "(default $COSTMESH_TRACE_FILE; none)")


def settings(args) -> tuple[int, int, Path]:
    """The gateway port, the HTTP port and the records directory: the option, else the
    environment variable, else the default."""
    port = args.port if args.port is not None else _env_port("COSTMESH_PORT", DEFAULT_PORT)
    http_port = args.http_port if args.http_port is not None else _env_port("COSTMESH_HTTP_PORT", DEFAULT_HTTP_PORT)
    records_dir = Path(args.records_dir or os.environ.get("COSTMESH_RECORDS_DIR") or DEFAULT_RECORDS_DIR)
    return port, http_port, records_dir.resolve()


def run(args) -> int:
    port, http_port, records_dir = settings(args)
    keys_file = getattr(args, "keys_file", None) or os.environ.get("COSTMESH_API_KEYS_FILE") or None
    trace_file = getattr(args, "trace_file", None) or os.environ.get("COSTMESH_TRACE_FILE") or None
    return serve_forever(port, http_port, records_dir,
                         tls=bool(getattr(args, "tls", False)), keys_file=keys_file, trace_file=trace_file)


def _say(line: str) -> None:
    print(line, flush=True)


def serve_forever(port: int = DEFAULT_PORT, http_port: int = DEFAULT_HTTP_PORT,
                  records_dir: Path | None = None, *, tls: bool = False,
                  keys_file: str | os.PathLike | None = None, trace_file: str | os.PathLike | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    records_dir = Path(records_dir or DEFAULT_RECORDS_DIR).resolve()
    records_dir.mkdir(parents=True, exist_ok=True)
    # The logs outlive the session (they are what tells why a service stopped).
    log_dir = tempfile.mkdtemp(prefix="costmesh-serve-")
    _say("costmesh serve: starting the mesh... (about a minute the first time)")
    extra_env = {"COSTMESH_HTTP_PORT": str(http_port), "COSTMESH_RECORDS_DIR": str(records_dir)}
    if not os.environ.get("COSTMESH_METRICS_PORT"):
        extra_env["COSTMESH_METRICS_PORT"] = "0"  # a Prometheus endpoint per service, each on a free port
    if keys_file:
        keys_file = Path(keys_file).expanduser().resolve()
        keys_file.parent.mkdir(parents=True, exist_ok=True)
        extra_env["COSTMESH_API_KEYS_FILE"] = str(keys_file)  # the launcher creates it when missing
    if trace_file:
        trace_file = Path(trace_file).expanduser().resolve()
        extra_env["COSTMESH_TRACE_FILE"] = str(trace_file)
    with start_mesh(log_dir, extra_env, gateway_port=port or None, tls=tls,
                    progress=lambda line: _say(f"  {line}")) as mesh:
        _summary(mesh, records_dir, log_dir, bool(keys_file), trace_file)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def _demo_key(mesh: Mesh, kept: bool) -> str:
    """The line about tenant 'demo''s key: a new key, or (a kept key file that has one) where it is."""
    keys_file = mesh.env.get("COSTMESH_API_KEYS_FILE")
    if kept and keys_file and any(r.active and r.tenant == "demo" for r in KeyStore(keys_file).records()):
        return (f"API keys:                {keys_file} (kept across restarts: the keys made before still work; "
                f"`costmesh keys --file {keys_file} create --tenant NAME` adds one)")
    where = f" ({'saved in' if kept else 'in'} {keys_file})" if keys_file else ""
    return f"API key for tenant 'demo': {mesh.api_key('demo')}{where}"


def _admin_key(mesh: Mesh, kept: bool) -> str:
    """The line about the dashboard's admin key: a new one, or (a kept key file that has one) where it is."""
    keys_file = mesh.env.get("COSTMESH_API_KEYS_FILE")
    if not keys_file:
        return "admin key:               none (no key file)"
    store = KeyStore(keys_file)
    if kept and any(r.active and r.admin for r in store.records()):
        return (f"admin key:               kept in {keys_file} (the one shown before still works; "
                f"`costmesh keys --file {keys_file} create --admin` adds one)")
    key, _ = store.create("", "costmesh serve", role=ADMIN_ROLE)
    where = f" ({'saved in' if kept else 'in'} {keys_file})"
    return f"admin key (dashboard):   {key}{where}"


def _dashboard(mesh: Mesh) -> str:
    """The dashboard's address: the gateway's HTTP port, `/dashboard`."""
    if not mesh.http_url:
        return "off (--http-port 0: the gateway serves it on its HTTP port)"
    return mesh.http_url.removesuffix("/v1") + "/dashboard (sign in with the admin key)"


def _summary(mesh: Mesh, records_dir: Path, log_dir: str, kept_keys: bool, trace_file: Path | None) -> None:
    """Every address, once every service is healthy."""
    _say("costmesh is ready:")
    _say(f"costmesh gateway (gRPC): {mesh.gateway}" + (" (TLS)" if mesh.ca_file else ""))
    _say(f"OpenAI-compatible API:   {mesh.http_url or 'off (--http-port 0)'}"
         + (f" (Anthropic Messages: {mesh.http_url}/messages)" if mesh.http_url else ""))
    if mesh.ca_file:
        _say(f"TLS: clients trust {mesh.ca_file} (Python: Client(..., ca_file=...); curl --cacert)")
    metrics = {name: p.metrics_port for name, p in mesh.processes.items() if p.metrics_port}
    for i, (name, port) in enumerate(metrics.items()):
        _say(f"{'metrics (Prometheus):' if i == 0 else '':<25}{name:<11}http://127.0.0.1:{port}/metrics")
    _say(f"dashboard (admin):       {_dashboard(mesh)}")
    redis = getattr(mesh.redis, "url", None) or mesh.env.get("REDIS_URL")
    if redis:
        _say(f"redis:                   {redis}" + (" (embedded)" if mesh.redis is not None else ""))
    _say(f"providers:               {('the simulator at ' + mesh.simulator_url) if mesh.simulator_url else 'real'}")
    _say(_demo_key(mesh, kept_keys))
    if mesh.http_url:
        _say(_admin_key(mesh, kept_keys))
    _say(f"cost records: {records_dir} (`costmesh report --records-dir {records_dir}`)")
    if trace_file:
        _say(f"traces: {trace_file} (every service's spans, one JSON object per line; kept after exit)")
    _say(f"logs: {log_dir} (kept after exit); Ctrl-C stops the mesh")
    _say("a service that dies is started again by itself; the services sign their calls to each other "
         f"with the mesh secret {mesh.env.get('COSTMESH_MESH_SECRET_FILE', '(none)')}")
