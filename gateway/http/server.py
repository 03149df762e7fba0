"""Starts and stops the HTTP API inside the gateway process, beside the gRPC server."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from costmesh.gateway.http.app import HttpApi


async def start_http(api: HttpApi, host: str, port: int, *, reuse_port: bool = False,
                     ssl_context: ssl.SSLContext | None = None) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on `host:port`; returns the bound port and the coroutine function that stops it.
    `reuse_port`: SO_REUSEPORT, so the gateway's workers (COSTMESH_WORKERS) share the port.
    `ssl_context`: HTTPS (`costmesh.rpc.tls.EdgeTls.http_context`, which follows the certificate files)."""
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return bound, runner.cleanup
