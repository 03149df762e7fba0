"""The dashboard's HTTP server (aiohttp): the page, its two static files, and the JSON API.

    GET  /dashboard                     the page (no data in it: it asks the API)
    GET  /api/v1/spend?since&until&top  spend, savings, cache and routing figures, by tenant/key/model
    GET  /api/v1/verifier               the cache verifier's operating point
    GET  /api/v1/keys                   the gateway's API keys (ids, tenants, states; never a key)
    POST /api/v1/keys                   {"tenant", "name"} -> a new key, shown once
    POST /api/v1/keys/{key_id}/revoke   revoke a key
    GET  /healthz                       "ok" (no data)

Every /api/ call needs `Authorization: Bearer <admin token>` (401 otherwise). Errors answer
with the gateway's HTTP error table (`{"error": {"message", "type", "param", "code"}}`). Each
request is logged as one line with its route (never its query string, headers or body).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import structlog
from aiohttp import web

from costmesh.config import Env
from costmesh.errors import CostmeshError, InvalidRequest
from costmesh.gateway.auth import KeyStore
from costmesh.gateway.http.errors import http_error
from costmesh.spend.breakdown import MAX_LIMIT
from costmesh.spend.times import parse_time
from costmesh.tooling.dashboard.admin_token import AdminToken
from costmesh.tooling.dashboard.keys import create_key, list_keys, revoke_key
from costmesh.tooling.dashboard.spend import spend
from costmesh.tooling.dashboard.verifier_point import operating_point

log = structlog.get_logger()

DEFAULT_SINCE = "24h"
DEFAULT_TOP = 10
MAX_PARAM_CHARS = 64
MAX_BODY_BYTES = 16 * 1024
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class DashboardSettings:
    records_dir: Path
    keys_file: Path | None  # None: the key panel says keys are not managed here


def _static(name: str) -> bytes:
    return resources.files("costmesh.tooling.dashboard").joinpath("static", name).read_bytes()


def _param(request: web.Request, name: str, default: str) -> str:
    value = request.query.get(name, default).strip() or default
    if len(value) > MAX_PARAM_CHARS:
        raise InvalidRequest(f"{name}: at most {MAX_PARAM_CHARS} characters")
    return value


class Dashboard:
    def __init__(self, settings: DashboardSettings, admin: AdminToken, env: Env, *,
                 clock: Callable[[], float] = time.time):
        self._settings = settings
        self._admin = admin
        self._env = env
        self._clock = clock
        self._keys = KeyStore(settings.keys_file) if settings.keys_file else None
        self._verifier: dict | None = None
        self._page = _static("index.html")
        self._files = {name: _static(name) for name in STATIC}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._middleware])
        app.router.add_get("/", self._root)
        app.router.add_get("/dashboard", self._index)
        app.router.add_get("/dashboard/static/{name}", self._static_file)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/api/v1/spend", self._spend)
        app.router.add_get("/api/v1/verifier", self._verifier_point)
        app.router.add_get("/api/v1/keys", self._list_keys)
        app.router.add_post("/api/v1/keys", self._create_key)
        app.router.add_post("/api/v1/keys/{key_id}/revoke", self._revoke_key)
        return app

    # -- middleware: admin check, errors, headers, one log line ----------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "(none)"
        try:
            if request.path.startswith("/api/"):
                self._admin.check(request.headers.get("Authorization"))
            response = await handler(request)
        except CostmeshError as exc:
            status, body, headers = http_error(exc)
            response = web.json_response(body, status=status, headers=headers)
        except web.HTTPException as exc:  # no such route or method, body too large, the redirect
            response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        log.info("dashboard request", method=request.method, route=route, status=response.status,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    # -- the page --------------------------------------------------------------------------

    async def _root(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard")

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            raise web.HTTPNotFound()
        return web.Response(body=self._files[name], content_type=STATIC[name], charset="utf-8")

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- the API ---------------------------------------------------------------------------

    async def _spend(self, request: web.Request) -> web.Response:
        now = self._clock()
        since = parse_time(_param(request, "since", DEFAULT_SINCE), "since", now)
        until = parse_time(_param(request, "until", "now"), "until", now)
        if until <= since:
            raise InvalidRequest("until: must be after since")
        try:
            top = int(_param(request, "top", str(DEFAULT_TOP)))
        except ValueError:
            raise InvalidRequest(f"top: a number from 1 to {MAX_LIMIT}") from None
        if not 1 <= top <= MAX_LIMIT:
            raise InvalidRequest(f"top: a number from 1 to {MAX_LIMIT}")
        body = await asyncio.to_thread(spend, self._settings.records_dir, since, until, top)
        return web.json_response(body)

    async def _verifier_point(self, _request: web.Request) -> web.Response:
        if self._verifier is None:  # the settings do not change while the process runs
            self._verifier = await asyncio.to_thread(operating_point, self._env)
        return web.json_response(self._verifier)

    def _store(self) -> KeyStore:
        if self._keys is None:
            raise InvalidRequest("keys: this dashboard has no key file (--keys-file or $COSTMESH_API_KEYS_FILE)")
        return self._keys

    async def _list_keys(self, _request: web.Request) -> web.Response:
        if self._keys is None:
            return web.json_response({"keys": [], "total": 0, "active": 0, "managed": False})
        return web.json_response({**await asyncio.to_thread(list_keys, self._keys), "managed": True})

    async def _create_key(self, request: web.Request) -> web.Response:
        store = self._store()
        try:
            body = json.loads(await request.text())
        except ValueError:
            raise InvalidRequest("body: not JSON") from None
        created = await asyncio.to_thread(create_key, store, body)
        log.info("api key created", key_id=created["key_id"], tenant=created["tenant"])
        return web.json_response(created, status=201)

    async def _revoke_key(self, request: web.Request) -> web.Response:
        store = self._store()
        revoked = await asyncio.to_thread(revoke_key, store, request.match_info["key_id"])
        log.info("api key revoked", key_id=revoked["key_id"], tenant=revoked["tenant"])
        return web.json_response(revoked)


async def start_dashboard(dashboard: Dashboard, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve on host:port (0: a free port); returns the runner (to `cleanup()`) and the port."""
    runner = web.AppRunner(dashboard.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]
