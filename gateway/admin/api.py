"""The dashboard and its JSON API, on the gateway's HTTP port beside the OpenAI and Anthropic APIs
(whose routes all start with `/v1/`, so nothing here can collide with them):

    GET  /dashboard                                   the page (no data in it: it asks the API)
    GET  /dashboard/static/{name}                     its script and stylesheet
    GET  /admin/api/v1/spend?since&until&top          spend, savings, cache and routing, by tenant/key/model
    GET  /admin/api/v1/verifier                       the cache verifier's operating point (the cache's GetStats)
    GET  /admin/api/v1/keys                           the API keys (ids, tenants, roles, states; never a key)
    POST /admin/api/v1/keys                           {"tenant", "name", "role"} -> a new key, shown once
    POST /admin/api/v1/keys/{key_id}/revoke           revoke a key
    GET  /admin/api/v1/limits                         budgets and limits per tenant and key, and their use
    PUT  /admin/api/v1/limits/{tenant}                {"rpm", "tpm", "usd_per_day", "usd_per_month"}
    PUT  /admin/api/v1/limits/{tenant}/keys/{key_id}  the same, for one key of the tenant

Every /admin/api/ call needs an admin key (`Authorization: Bearer <key>`, `costmesh keys create
--admin`): none or an unknown one is 401, a tenant's key 403 (`Authenticator.authenticate_admin`).
Errors are the gateway's HTTP error bodies (`{"error": {"message", "type", "param", "code"}}`),
made by `HttpApi`'s middleware, which also logs each request's one line (method, path, status:
never a header, a query string or a body). The page and the API carry a strict
Content-Security-Policy; the API's answers are never cached.

The spend is this gateway replica's own records directory (`COSTMESH_RECORDS_DIR`): replicas
that do not share one each show their own traffic. Reading it runs in a thread, one period at
a time per process, so the page's refreshes never pile up on the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from costmesh.errors import InvalidRequest, NotFound, Unavailable
from costmesh.gateway.admin import keys as admin_keys
from costmesh.gateway.admin.limits import list_limits, parse_limits, row_json
from costmesh.gateway.admin.spend import spend
from costmesh.gateway.admin.verifier import CacheStats, operating_point
from costmesh.gateway.auth import Authenticator, KeyRecord, KeyStore
from costmesh.gateway.http.json_body import parse_json
from costmesh.gateway.limits import Limiter
from costmesh.spend.breakdown import MAX_LIMIT
from costmesh.spend.times import parse_time

log = structlog.get_logger()

API = "/admin/api/v1"
PAGE = "/dashboard"
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
NO_LIMITS = "limits are not enforced by this gateway (no REDIS_URL, or COSTMESH_LIMITS=off)"


def _static(name: str) -> bytes:
    return resources.files("costmesh.gateway.admin").joinpath("static", name).read_bytes()


def _param(request: web.Request, name: str, default: str) -> str:
    value = request.query.get(name, default).strip() or default
    if len(value) > MAX_PARAM_CHARS:
        raise InvalidRequest(f"{name}: at most {MAX_PARAM_CHARS} characters")
    return value


async def _body(request: web.Request) -> object:
    # Read whole (the app's client_max_size bounds it) before refusing: a reply sent while the
    # client is still writing can reach it as a reset connection instead of the 400.
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"body: at most {MAX_BODY_BYTES} bytes")
    return parse_json(raw) if raw.strip() else None


class AdminApi:
    """`records_dir`: this gateway's cost records (None: spend is unavailable); `limiter`: the
    gateway's limits (None: not enforced, so nothing to set); `cache_stats`: asks the cache for
    its GetStats (None: no cache peer)."""

    def __init__(self, auth: Authenticator, *, records_dir: str | Path | None, limiter: Limiter | None,
                 cache_stats: CacheStats | None, clock: Callable[[], float] = time.time):
        self._auth = auth
        self._records_dir = Path(records_dir) if records_dir else None
        self._limiter = limiter
        self._cache_stats = cache_stats
        self._clock = clock
        self._reading = asyncio.Semaphore(1)  # one period read at a time, off the event loop
        self._page = _static("index.html")
        self._files = {name: _static(name) for name in STATIC}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PAGE, self._index)
        app.router.add_get(PAGE + "/static/{name}", self._static_file)
        app.router.add_get(API + "/spend", self._spend)
        app.router.add_get(API + "/verifier", self._verifier)
        app.router.add_get(API + "/keys", self._list_keys)
        app.router.add_post(API + "/keys", self._create_key)
        app.router.add_post(API + "/keys/{key_id}/revoke", self._revoke_key)
        app.router.add_get(API + "/limits", self._list_limits)
        app.router.add_put(API + "/limits/{tenant}", self._set_limits)
        app.router.add_put(API + "/limits/{tenant}/keys/{key_id}", self._set_limits)
        app.on_response_prepare.append(_headers)

    def _admin(self, request: web.Request) -> KeyRecord:
        return self._auth.authenticate_admin(request.headers.get("Authorization"))

    def _store(self) -> KeyStore:
        assert self._auth.store is not None  # authenticate_admin refused the call otherwise
        return self._auth.store

    # -- the page --------------------------------------------------------------------------

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            raise NotFound(f"{PAGE}/static/: no such file")
        return web.Response(body=self._files[name], content_type=STATIC[name], charset="utf-8")

    # -- spend and the verifier ------------------------------------------------------------

    async def _spend(self, request: web.Request) -> web.Response:
        self._admin(request)
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
        if self._records_dir is None:
            raise Unavailable("spend: this gateway keeps no cost records (set COSTMESH_RECORDS_DIR)")
        async with self._reading:
            body = await asyncio.to_thread(spend, self._records_dir, since, until, top)
        return web.json_response(body)

    async def _verifier(self, request: web.Request) -> web.Response:
        self._admin(request)
        return web.json_response(await operating_point(self._cache_stats))

    # -- keys ------------------------------------------------------------------------------

    async def _list_keys(self, request: web.Request) -> web.Response:
        self._admin(request)
        return web.json_response(await asyncio.to_thread(admin_keys.list_keys, self._store()))

    async def _create_key(self, request: web.Request) -> web.Response:
        admin = self._admin(request)
        body = await _body(request)
        created = await asyncio.to_thread(admin_keys.create_key, self._store(), body)
        log.info("api key created", key_id=created["key_id"], tenant=created["tenant"], role=created["role"],
                 by_key_id=admin.key_id)
        return web.json_response(created, status=201)

    async def _revoke_key(self, request: web.Request) -> web.Response:
        admin = self._admin(request)
        revoked = await asyncio.to_thread(admin_keys.revoke_key, self._store(), request.match_info["key_id"], admin)
        log.info("api key revoked", key_id=revoked["key_id"], tenant=revoked["tenant"], by_key_id=admin.key_id)
        return web.json_response(revoked)

    # -- limits ----------------------------------------------------------------------------

    async def _list_limits(self, request: web.Request) -> web.Response:
        self._admin(request)
        if self._limiter is None:
            return web.json_response({"enforced": False, "reason": NO_LIMITS, "rows": [], "truncated": False})
        records = await asyncio.to_thread(self._store().records)
        try:
            return web.json_response(await list_limits(self._limiter, records))
        except RedisError as exc:
            raise Unavailable(f"limits: Redis is unreachable ({type(exc).__name__})") from None

    async def _set_limits(self, request: web.Request) -> web.Response:
        admin = self._admin(request)
        tenant = admin_keys.check_tenant(request.match_info["tenant"])
        key_id = request.match_info.get("key_id", "")
        key = None
        if key_id:
            admin_keys.check_key_id(key_id)
            records = await asyncio.to_thread(self._store().records)
            key = next((r for r in records if r.key_id == key_id and r.tenant == tenant and not r.admin), None)
            if key is None:
                raise NotFound(f"key_id: no key {key_id} of tenant {tenant!r}")
        limits = parse_limits(await _body(request))
        if self._limiter is None:
            raise Unavailable(NO_LIMITS)
        try:
            await self._limiter.set(tenant, limits, key_id)
            status = await self._limiter.status(tenant, key_id)
        except RedisError as exc:
            raise Unavailable(f"limits: Redis is unreachable ({type(exc).__name__})") from None
        log.info("limits set", tenant=tenant, key_id=key_id, by_key_id=admin.key_id,
                 **{name: value for name, value in vars(limits).items() if value is not None})
        return web.json_response(row_json(tenant, key, key_id, status))


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """The page's and the API's security headers, on errors too; the API's answers are not cached."""
    if request.path == PAGE or request.path.startswith((PAGE + "/", "/admin/")):
        response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/admin/"):
        response.headers["Cache-Control"] = "no-store"
