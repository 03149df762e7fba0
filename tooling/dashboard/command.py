"""`costmesh dashboard`: the operators' live view, served until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.observability.logs import configure_logging
from costmesh.tooling.dashboard.admin_token import load_admin_token
from costmesh.tooling.dashboard.app import Dashboard, DashboardSettings, start_dashboard
from costmesh.tooling.report.command import DEFAULT_RECORDS_DIR

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def add_arguments(parser) -> None:
    parser.add_argument("--host", default=None,
                        help=f"address to listen on (default $COSTMESH_DASHBOARD_HOST or {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=None,
                        help=f"port (default $COSTMESH_DASHBOARD_PORT or {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--records-dir", default=None,
                        help="the gateway's cost records "
                             f"(default $COSTMESH_RECORDS_DIR or ./{DEFAULT_RECORDS_DIR})")
    parser.add_argument("--keys-file", default=None,
                        help="the gateway's API key file, for key creation and revocation "
                             "(default $COSTMESH_API_KEYS_FILE; without one, keys are not managed here)")
    parser.add_argument("--admin-token-file", default=None,
                        help="file holding the admin token the dashboard asks for; made (0600, random) if "
                             "missing (default $COSTMESH_ADMIN_TOKEN_FILE; or give the token in "
                             "$COSTMESH_ADMIN_TOKEN)")


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    records_dir: Path
    keys_file: Path | None
    admin_token_file: str | None


def options(args, env: dict[str, str]) -> Options:
    """Each option, else its environment variable, else the default."""
    port = args.port
    if port is None:
        raw = env.get("COSTMESH_DASHBOARD_PORT")
        try:
            port = _port(raw) if raw else DEFAULT_PORT
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"$COSTMESH_DASHBOARD_PORT: {exc}") from None
    keys = args.keys_file or env.get("COSTMESH_API_KEYS_FILE")
    return Options(
        host=args.host or env.get("COSTMESH_DASHBOARD_HOST") or DEFAULT_HOST,
        port=port,
        records_dir=Path(args.records_dir or env.get("COSTMESH_RECORDS_DIR") or DEFAULT_RECORDS_DIR).resolve(),
        keys_file=Path(keys).resolve() if keys else None,
        admin_token_file=args.admin_token_file or env.get("COSTMESH_ADMIN_TOKEN_FILE"),
    )


def run(args) -> int:
    env = dict(os.environ)
    opts = options(args, env)
    admin, created = load_admin_token(opts.admin_token_file, env.get("COSTMESH_ADMIN_TOKEN"))
    configure_logging("dashboard", env.get("COSTMESH_LOG_LEVEL", "info"))
    dashboard = Dashboard(DashboardSettings(opts.records_dir, opts.keys_file), admin, Env(env))
    return asyncio.run(_serve(dashboard, opts, admin.source, created))


async def _serve(dashboard: Dashboard, opts: Options, token_source: str, created: bool) -> int:
    runner, port = await start_dashboard(dashboard, opts.host, opts.port)
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    print(f"costmesh dashboard: http://{host}:{port}/dashboard", flush=True)
    print(f"admin token: {token_source}" + (" (made now)" if created else "")
          + "; the page asks for it, the API wants `Authorization: Bearer <token>`", flush=True)
    print(f"cost records: {opts.records_dir}", flush=True)
    print(f"API keys: {opts.keys_file or 'not managed here (no --keys-file / $COSTMESH_API_KEYS_FILE)'}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
