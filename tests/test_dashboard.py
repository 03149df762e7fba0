"""The dashboard on the gateway's HTTP port (`/dashboard`, `/admin/api/v1/...`): admin keys only
(none or an unknown one 401, a tenant's key 403, in the gateway's HTTP error shape), its spend
against the cost records, key creation and revocation through the gateway's key store, budgets
and limits read and set in a real Redis, and the page in a real browser (Debian's headless
chromium, driven over the DevTools protocol): the numbers it shows are checked against the
records, a limit is edited through the form, and its screenshot is kept in
build/artifacts/dashboard.png."""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.cost_records import CostRecorder, bind_key_id, read_records
from costmesh.errors import LimitExceeded, Unauthenticated, UpstreamError
from costmesh.gateway import limits as limits_module
from costmesh.gateway.admin import api as admin_api
from costmesh.gateway.admin.api import AdminApi
from costmesh.gateway.auth import ADMIN_ROLE, Authenticator, KeyStore
from costmesh.gateway.http.app import HttpApi
from costmesh.gateway.http.server import start_http
from costmesh.gateway.limits import Limiter, Limits
from costmesh.spend.breakdown import breakdown
from costmesh.spend.summary import summarize
from costmesh.tooling.mesh_client import build_request

from browser import Browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "artifacts"
RUN = uuid.uuid4().hex[:6]  # tenants of this run: their limits in a shared Redis are this run's own
ACME, GLOBEX = f"acme-{RUN}", f"globex-{RUN}"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
SINCE, UNTIL = START - 3600, START + 6 * 3600
PERIOD = f"since={int(SINCE)}&until={int(UNTIL)}"
EMBEDDING = 0.00001
API = "/admin/api/v1"


def answer(model: str, tier: int, classified: int, cost: float, baseline: float) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        model=model, provider="openai", tier=tier, classified_tier=classified, cache_status=gw.CACHE_STATUS_MISS,
        cost=common.CostBreakdown(total_usd=cost + EMBEDDING, embedding_usd=EMBEDDING),
        baseline_cost_usd=baseline, saving_usd=baseline - cost - EMBEDDING,
        savings=common.LayerSavings(cache_usd=-EMBEDDING, routing_usd=baseline - cost),
    )


def cached(baseline: float, exact: bool) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        model="gpt-5-mini", provider="cache", cached=True, cache_similarity=1.0 if exact else 0.94,
        cache_status=gw.CACHE_STATUS_EXACT_HIT if exact else gw.CACHE_STATUS_SEMANTIC_HIT,
        cost=common.CostBreakdown(total_usd=EMBEDDING, embedding_usd=EMBEDDING),
        baseline_cost_usd=baseline, saving_usd=baseline - EMBEDDING,
        savings=common.LayerSavings(cache_usd=baseline - EMBEDDING),
    )


@pytest.fixture
def keys(tmp_path):
    """The gateway's key file: three tenant keys of two tenants, and an admin key."""
    store = KeyStore(tmp_path / "api-keys.json")
    ids = {name: store.create(tenant, name)[1].key_id
           for name, tenant in (("acme-web", ACME), ("acme-batch", ACME), ("globex-app", GLOBEX))}
    admin_key, admin_record = store.create("", "ops", role=ADMIN_ROLE)
    ids["admin"] = admin_record.key_id
    return store, ids, admin_key


@pytest.fixture
def records(tmp_path, keys):
    """Six hours of traffic from three keys (as the gateway records it: the key id bound per call)."""
    _, ids, _ = keys
    directory = tmp_path / "records"
    now = [START]
    recorder = CostRecorder(directory, clock=lambda: now[0], writer_id="gw")
    simple, moderate, complex_ = common.TIER_SIMPLE, common.TIER_MODERATE, common.TIER_COMPLEX
    traffic = [
        ("acme-web", ACME, answer("gpt-5-mini", simple, simple, 0.0011, 0.0200)),
        ("acme-web", ACME, cached(0.0200, exact=True)),
        ("acme-web", ACME, cached(0.0200, exact=False)),
        ("acme-batch", ACME, answer("gpt-5-mini", simple, simple, 0.0009, 0.0150)),
        ("globex-app", GLOBEX, answer("claude-sonnet-4-5", complex_, moderate, 0.0180, 0.0250)),
        ("globex-app", GLOBEX, answer("claude-haiku-4-5", moderate, moderate, 0.0040, 0.0250)),
        ("globex-app", GLOBEX, UpstreamError("anthropic: 529 overloaded")),
    ]
    for i, (name, tenant, outcome) in enumerate(traffic):
        now[0] = START + i * 2400

        def serve(name=name, tenant=tenant, outcome=outcome):
            bind_key_id(ids[name])
            request = build_request("a question", tenant=tenant)
            if isinstance(outcome, Exception):
                recorder.on_error(request, outcome)
            else:
                recorder.on_answer(request, outcome)

        contextvars.copy_context().run(serve)
    recorder.close()
    return directory


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def serve_http(store: KeyStore | None, records_dir: Path | None, limiter: Limiter | None):
    """The gateway's HTTP app (`HttpApi`, as the gateway mounts it) with the admin API, on a free
    port; its base URL and the function that stops it. No pipeline: these tests make no completions
    (tests/test_dashboard_mesh.py does, on a whole mesh)."""
    auth = Authenticator(store)
    admin = AdminApi(auth, records_dir=records_dir, limiter=limiter, cache_stats=None)
    api = HttpApi(None, auth, load_catalog(), TracerProvider().get_tracer("test"), 1 << 20,
                  more_routes=admin.add_routes)
    port, close = await start_http(api, "127.0.0.1", 0)
    return f"http://127.0.0.1:{port}", close


@pytest.fixture
async def gateway(records, keys, redis):
    store, _, _ = keys
    base, close = await serve_http(store, records, Limiter(redis))
    yield base
    await close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def call(method: str, url: str, headers: dict | None = None, body: object = None,
               data: bytes | None = None) -> tuple[int, dict | str, dict]:
    async with aiohttp.ClientSession() as session, session.request(
            method, url, headers=headers, json=body if data is None else None, data=data) as reply:
        payload = await reply.json() if reply.content_type == "application/json" else await reply.text()
        return reply.status, payload, dict(reply.headers)


async def get(url: str, headers: dict | None = None):
    return await call("GET", url, headers)


# -- who may call -----------------------------------------------------------------------------------

ADMIN_CALLS = (("GET", "/spend", None), ("GET", "/verifier", None), ("GET", "/keys", None), ("GET", "/limits", None),
               ("POST", "/keys", {"tenant": "evil"}), ("POST", "/keys/{key_id}/revoke", None),
               ("PUT", f"/limits/{ACME}", {"rpm": 1}), ("PUT", f"/limits/{ACME}/keys/{{key_id}}", {"rpm": 1}))


async def test_the_admin_api_wants_an_admin_key(gateway, keys, redis):
    store, ids, admin_key = keys
    tenant_key, _ = store.create(ACME, "not an admin")
    for method, path, body in ADMIN_CALLS:
        url = gateway + API + path.format(key_id=ids["acme-web"])
        for headers in (None, bearer("cm_0123456789ab_unknown"), bearer(admin_key + "x"), {"Authorization": admin_key}):
            status, reply, _ = await call(method, url, headers, body)
            assert status == 401, (method, path, headers)
            assert reply["error"]["code"] == "invalid_api_key" and reply["error"]["type"] == "invalid_request_error"
        status, reply, headers = await call(method, url, bearer(tenant_key), body)
        assert status == 403, (method, path)
        assert reply == {"error": {"message": "a tenant's key cannot use the admin API: it needs an admin key "
                                              "(`costmesh keys create --admin`)",
                                   "type": "invalid_request_error", "param": None, "code": "permission_denied"}}
        assert headers["Cache-Control"] == "no-store" and "default-src 'none'" in headers["Content-Security-Policy"]
    assert all(r.tenant != "evil" for r in store.records())
    assert all(r.active for r in store.records())
    assert await Limiter(redis).get(ACME) == Limits()  # nothing was set

    status, page, headers = await get(gateway + "/dashboard")  # the page holds no data: it asks the API
    assert status == 200 and "costmesh" in page and "$0." not in page
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    status, script, _ = await get(gateway + "/dashboard/static/dashboard.js")
    assert status == 200 and "/admin/api/v1" in script
    status, reply, _ = await get(gateway + "/dashboard/static/secrets.json")
    assert status == 404 and reply["error"]["code"] == "not_found"


async def test_without_keys_the_admin_api_is_closed(records, redis):
    """Authentication off (COSTMESH_AUTH=off) has no admin keys: the admin API never runs open."""
    base, close = await serve_http(None, records, Limiter(redis))
    try:
        status, reply, _ = await get(f"{base}{API}/spend?{PERIOD}")
        assert status == 403 and "authentication is off" in reply["error"]["message"]
    finally:
        await close()


# -- spend ------------------------------------------------------------------------------------------


async def test_spend_answers_the_records_totals_and_groups(gateway, records, keys):
    status, body, headers = await get(f"{gateway}{API}/spend?{PERIOD}", bearer(keys[2]))
    assert status == 200 and headers["Cache-Control"] == "no-store"
    rows = list(read_records(records))
    summary = summarize(rows, SINCE, UNTIL)
    totals = body["totals"]
    assert totals["requests"] == 7 and totals["answered"] == 6 and totals["failed"] == 1
    assert totals["cost_usd"] == pytest.approx(summary.cost_usd, abs=1e-6)
    assert totals["baseline_usd"] == pytest.approx(summary.baseline_usd, abs=1e-6)
    assert totals["saving_usd"] == pytest.approx(summary.saving_usd, abs=1e-6)
    assert body["cache"]["exact_hits"] == 1 and body["cache"]["semantic_hits"] == 1
    assert body["cache"]["hit_rate"] == pytest.approx(2 / 6, abs=1e-4)
    assert body["routing"]["tiers"] == {"cached": 2, "simple": 2, "moderate": 1, "complex": 1}
    assert body["routing"]["upgraded"] == 1 and body["routing"]["upgrade_rate"] == 0.25
    assert body["errors"] == {"UpstreamError": 1}
    assert sum(b["requests"] for b in body["series"]["buckets"]) == 7
    assert len(body["series"]["buckets"]) <= 31
    for dimension in ("tenant", "key", "model"):
        expected = breakdown(rows, dimension, SINCE, UNTIL)
        got = body["by"][dimension]
        assert [g["name"] for g in got["groups"]] == [g.name for g in expected.groups]
        for mine, theirs in zip(got["groups"], expected.groups):
            assert mine["requests"] == theirs.requests
            assert mine["cost_usd"] == pytest.approx(theirs.cost_usd, abs=1e-6)
    assert {g["name"] for g in body["by"]["model"]["groups"]} == {
        "gpt-5-mini", "cache", "claude-sonnet-4-5", "claude-haiku-4-5", "(failed)"}


async def test_spend_bounds_its_inputs_and_its_groups(gateway, keys):
    admin = bearer(keys[2])
    status, body, _ = await get(f"{gateway}{API}/spend?{PERIOD}&top=1", admin)
    assert status == 200
    for dimension in ("tenant", "key", "model"):
        assert len(body["by"][dimension]["groups"]) == 1 and body["by"][dimension]["others"]
    for query, message in ((f"{PERIOD}&top=101", "top: a number from 1 to 100"),
                           (f"{PERIOD}&top=x", "top: a number"),
                           ("since=" + "1" * 65, "since: at most 64 characters"),
                           ("since=yesterday", "since: 'yesterday' is not a time"),
                           ("since=nan", "since: 'nan' is outside"),
                           ("since=1e300", "since: '1e300' is outside"),
                           ("until=-inf", "until: '-inf' is outside"),
                           (f"since={int(UNTIL)}&until={int(SINCE)}", "until: must be after since")):
        status, body, _ = await get(f"{gateway}{API}/spend?{query}", admin)
        assert status == 400 and message in body["error"]["message"], query
        assert body["error"]["param"] == message.split(":")[0]


async def test_spend_without_records_says_so(keys, redis):
    store, _, admin_key = keys
    base, close = await serve_http(store, None, Limiter(redis))
    try:
        status, body, _ = await get(f"{base}{API}/spend", bearer(admin_key))
        assert status == 503 and "COSTMESH_RECORDS_DIR" in body["error"]["message"]
        status, body, _ = await get(f"{base}{API}/verifier", bearer(admin_key))
        assert status == 200 and body["available"] is False and body["reason"]
    finally:
        await close()


# -- keys -------------------------------------------------------------------------------------------


async def test_keys_made_and_revoked_here_work_and_stop_at_the_gateway(gateway, keys, monkeypatch, request):
    store, ids, admin_key = keys
    admin = bearer(admin_key)
    gateway_auth = Authenticator(KeyStore(store.path))  # the gateway's own reader of the same file
    # Earlier tests may have configured structlog for a service at level warning, with loggers
    # cached on first use: log at every level here, through a logger bound now.
    saved = structlog.get_config()
    request.addfinalizer(lambda: structlog.configure(**saved))
    monkeypatch.setattr(admin_api, "log", structlog.get_logger())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
                        cache_logger_on_first_use=False)
    with structlog.testing.capture_logs() as logs:
        status, created, _ = await call("POST", gateway + API + "/keys", admin, {"tenant": "initech", "name": "ops"})
        assert status == 201 and created["tenant"] == "initech" and created["key"].startswith("cm_")
        assert created["role"] == "tenant"
        assert gateway_auth.authenticate(f"Bearer {created['key']}").tenant == "initech"
        status, second_admin, _ = await call("POST", gateway + API + "/keys", admin, {"role": "admin", "name": "b"})
        assert status == 201 and second_admin["role"] == "admin" and second_admin["tenant"] == ""
        assert gateway_auth.authenticate_admin(f"Bearer {second_admin['key']}").key_id == second_admin["key_id"]
        status, listed, _ = await get(gateway + API + "/keys", admin)
        assert status == 200 and listed["managed"] and listed["active"] == 6 and listed["total"] == 6
        assert all("key" not in k and "sha256" not in k for k in listed["keys"])
        assert {k["key_id"]: k["role"] for k in listed["keys"]}[ids["admin"]] == "admin"
        status, revoked, _ = await call("POST", f"{gateway}{API}/keys/{created['key_id']}/revoke", admin)
        assert status == 200 and revoked["active"] is False and revoked["revoked_at"]
        with pytest.raises(Unauthenticated):
            gateway_auth.authenticate(f"Bearer {created['key']}")
        status, body, _ = await call("POST", f"{gateway}{API}/keys/{ids['admin']}/revoke", admin)
        assert status == 400 and body["error"]["param"] == "key_id"  # not the key of this session
        status, body, _ = await call("POST", f"{gateway}{API}/keys/{'f' * 12}/revoke", admin)
        assert status == 404 and body["error"]["code"] == "not_found"
        for bad, field in (({"tenant": ""}, "tenant"), ({"tenant": "a b"}, "tenant"), ({"tenant": "x" * 65}, "tenant"),
                           ({"tenant": "ok", "name": "x" * 101}, "name"), (["tenant"], "body"),
                           ({"tenant": "ok", "owner": "x"}, "owner"), ({"tenant": "ok", "role": "root"}, "role"),
                           ({"tenant": "ok", "role": "admin"}, "tenant")):
            status, body, _ = await call("POST", gateway + API + "/keys", admin, bad)
            assert status == 400 and body["error"]["param"] == field, bad
        status, body, _ = await call("POST", gateway + API + "/keys", admin, data=b'{"tenant": NaN}')
        assert status == 400 and body["error"]["param"] == "body"
        status, body, _ = await call("POST", gateway + API + "/keys", admin, data=b"x" * (17 * 1024))
        assert status == 400 and "at most 16384 bytes" in body["error"]["message"]
        status, body, _ = await call("POST", f"{gateway}{API}/keys/not-hex/revoke", admin)
        assert status == 400 and body["error"]["param"] == "key_id"
    logged = json.dumps(logs)
    for secret in (created["key"], second_admin["key"], admin_key):
        assert secret not in logged and secret.split("_", 2)[2] not in logged  # cm_<key id>_<secret>
    assert {"api key created", "api key revoked"} <= {entry["event"] for entry in logs}


# -- limits -----------------------------------------------------------------------------------------


async def test_limits_are_read_and_set_per_tenant_and_key(gateway, keys, redis):
    _, ids, admin_key = keys
    admin = bearer(admin_key)
    status, body, _ = await get(gateway + API + "/limits", admin)
    assert status == 200 and body["enforced"] is True
    rows = {(r["tenant"], r["key_id"]): r for r in body["rows"]}
    for scope in ((ACME, ""), (ACME, ids["acme-web"]), (ACME, ids["acme-batch"]), (GLOBEX, ""),
                  (GLOBEX, ids["globex-app"])):  # every tenant and key, limits or not
        assert rows[scope]["limits"] == {"rpm": None, "tpm": None, "usd_per_day": None, "usd_per_month": None}
    assert rows[(ACME, ids["acme-web"])]["key_name"] == "acme-web"
    assert not any(r["key_id"] == ids["admin"] for r in body["rows"])  # admin keys have no limits

    status, row, _ = await call("PUT", f"{gateway}{API}/limits/{ACME}", admin,
                                {"rpm": 2, "tpm": None, "usd_per_day": 1.25, "usd_per_month": 30})
    assert status == 200 and row["limits"] == {"rpm": 2, "tpm": None, "usd_per_day": 1.25, "usd_per_month": 30.0}
    assert row["requests_available"] == 2 and row["tokens_available"] is None
    status, row, _ = await call("PUT", f"{gateway}{API}/limits/{ACME}/keys/{ids['acme-batch']}", admin, {"tpm": 5000})
    assert status == 200 and row["key_name"] == "acme-batch" and row["limits"]["tpm"] == 5000
    status, body, _ = await get(gateway + API + "/limits", admin)
    rows = {(r["tenant"], r["key_id"]): r for r in body["rows"]}
    assert rows[(ACME, "")]["limits"]["usd_per_day"] == 1.25
    assert rows[(ACME, ids["acme-batch"])]["limits"]["tpm"] == 5000

    limiter = Limiter(redis)  # what every gateway replica enforces
    assert await limiter.get(ACME) == Limits(rpm=2, usd_per_day=1.25, usd_per_month=30.0)
    for _ in range(2):
        await limiter.admit(ACME, ids["acme-web"], 0, 0)
    with pytest.raises(LimitExceeded, match="requests per minute"):
        await limiter.admit(ACME, ids["acme-web"], 0, 0)
    status, body, _ = await get(gateway + API + "/limits", admin)
    assert {(r["tenant"], r["key_id"]): r for r in body["rows"]}[(ACME, "")]["requests_available"] == 0

    status, row, _ = await call("PUT", f"{gateway}{API}/limits/{ACME}", admin, {})  # all null: no limits
    assert status == 200 and set(row["limits"].values()) == {None}
    assert await limiter.get(ACME) == Limits()


async def test_limits_set_before_the_scope_index_are_listed(gateway, keys, redis):
    """Limits set by a gateway or `costmesh limits` of before the index: found by one SCAN, once."""
    orphan = f"gone-{RUN}"  # a tenant with limits and no key left: only Redis knows it
    await redis.hset(f"costmesh:limits:{{{orphan}}}:settings", mapping={"rpm": "7"})
    await redis.delete(limits_module.SCOPES_INDEXED)
    status, body, _ = await get(gateway + API + "/limits", bearer(keys[2]))
    assert status == 200
    assert {(r["tenant"], r["key_id"]): r for r in body["rows"]}[(orphan, "")]["limits"]["rpm"] == 7
    assert await redis.exists(limits_module.SCOPES_INDEXED)
    await Limiter(redis).set(orphan, Limits())  # cleared: out of the index too
    status, body, _ = await get(gateway + API + "/limits", bearer(keys[2]))
    assert all(r["tenant"] != orphan for r in body["rows"])


@pytest.mark.parametrize(("body", "field"), [
    ({"rpm": "10"}, "rpm"), ({"rpm": 0}, "rpm"), ({"rpm": 1.5}, "rpm"), ({"rpm": True}, "rpm"),
    ({"rpm": 10**10}, "rpm"), ({"tpm": -1}, "tpm"), ({"usd_per_day": -0.01}, "usd_per_day"),
    ({"usd_per_day": 1e10}, "usd_per_day"), ({"usd_per_month": "x"}, "usd_per_month"),
    ({"usd_per_month": False}, "usd_per_month"), ({"rps": 3}, "rps"), ([1, 2], "body"), ("rpm", "body"),
])
async def test_bad_limits_are_400s_naming_the_field(gateway, keys, redis, body, field):
    status, reply, _ = await call("PUT", f"{gateway}{API}/limits/{GLOBEX}", bearer(keys[2]), body)
    assert status == 400 and reply["error"]["param"] == field, reply
    assert await Limiter(redis).get(GLOBEX) == Limits()  # nothing was set


async def test_limits_name_a_tenant_and_one_of_its_keys(gateway, keys, redis):
    _, ids, admin_key = keys
    admin = bearer(admin_key)
    for path, status_, field in ((f"/limits/{ACME}/keys/{ids['globex-app']}", 404, "key_id"),  # another's key
                                 (f"/limits/{ACME}/keys/{ids['admin']}", 404, "key_id"),
                                 (f"/limits/{ACME}/keys/{'0' * 12}", 404, "key_id"),
                                 (f"/limits/{ACME}/keys/NOT-HEX", 400, "key_id"),
                                 ("/limits/a%20b", 400, "tenant"), ("/limits/" + "t" * 65, 400, "tenant")):
        status, reply, _ = await call("PUT", gateway + API + path, admin, {"rpm": 5})
        assert status == status_ and reply["error"]["message"].startswith(field + ": "), path
        assert reply["error"]["param"] == (field if status_ == 400 else None)  # a 404 names no parameter
    status, reply, _ = await call("PUT", f"{gateway}{API}/limits/{ACME}", admin, data=b'{"rpm": Infinity}')
    assert status == 400 and reply["error"]["param"] == "body"


async def test_without_redis_limits_are_not_enforced_and_say_so(records, keys):
    store, _, admin_key = keys
    base, close = await serve_http(store, records, None)
    try:
        status, body, _ = await get(f"{base}{API}/limits", bearer(admin_key))
        assert status == 200 and body == {"enforced": False, "reason": admin_api.NO_LIMITS, "rows": [],
                                          "truncated": False}
        status, body, _ = await call("PUT", f"{base}{API}/limits/{ACME}", bearer(admin_key), {"rpm": 3})
        assert status == 503 and "not enforced" in body["error"]["message"]
    finally:
        await close()


# -- the page in a real browser -----------------------------------------------------------------------


class Page(HTMLParser):
    """What the rendered DOM shows: the `data-field` values and the cells of each `data-group` row."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.groups: dict[str, dict[str, str]] = {}
        self.state = ""
        self._open: list[tuple[str, str | None, str | None]] = []  # (tag, field, group column)
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.state = attrs.get("data-state", "")
        if tag == "tr" and (attrs.get("data-group") or attrs.get("data-limit")):
            self._row = attrs.get("data-group") or "limit:" + attrs["data-limit"]
            self.groups[self._row] = {}
        column = attrs.get("data-col") if self._row else None
        self._open.append((tag, attrs.get("data-field"), column))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        for _tag, field, column in reversed(self._open):
            if field:
                self.fields[field] = self.fields.get(field, "") + data
                return
            if column and self._row:
                cells = self.groups[self._row]
                cells[column] = cells.get(column, "") + data
                return


def usd(value: float) -> str:
    return f"${value:.6f}"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


async def shown(browser: Browser) -> Page:
    page = Page()
    page.feed(await browser.html())
    return page


async def test_the_page_shows_the_records_numbers_and_edits_a_limit(gateway, records, keys, redis):
    _, ids, admin_key = keys
    async with Browser(1400, 1000) as browser:
        # The key travels in the fragment, which never reaches the server; the page drops it at once.
        await browser.goto(f"{gateway}/dashboard?{PERIOD}#key={admin_key}")
        await browser.wait_for("document.body.dataset.state === 'ready'")
        assert admin_key not in await browser.evaluate("location.href")
        page = await shown(browser)
        rows = list(read_records(records))
        summary = summarize(rows, SINCE, UNTIL)
        assert page.fields["totals.cost_usd"] == usd(round(summary.cost_usd, 6))
        assert page.fields["totals.baseline_usd"] == usd(round(summary.baseline_usd, 6))
        assert page.fields["totals.saving_usd"] == usd(round(summary.saving_usd, 6))
        assert page.fields["totals.saving_ratio"] == pct(round(summary.saving_ratio, 4))
        assert page.fields["totals.requests"] == "7" and page.fields["totals.failed"] == "1"
        assert page.fields["cache.hit_rate"] == pct(round(summary.hit_rate, 4))
        assert page.fields["routing.upgrade_rate"] == pct(summary.upgrade_rate)
        for dimension in ("tenant", "key", "model"):
            for group in breakdown(rows, dimension, SINCE, UNTIL).groups:
                cells = page.groups[f"{dimension}:{group.name}"]
                assert cells["requests"] == str(group.requests)
                assert cells["cost_usd"] == usd(round(group.cost_usd, 6)), (dimension, group.name)
                assert cells["saving_usd"] == usd(round(group.saving_usd, 6))
        # globex's key: two answers (each with its embedding) and a failed request, which cost nothing
        assert page.groups[f"key:{ids['globex-app']}"]["cost_usd"] == usd(0.018 + 0.004 + 2 * EMBEDDING)
        assert page.groups[f"tenant:{ACME}"]["hit_rate"] == "50.0%"
        assert page.groups[f"limit:{ACME}:{ids['acme-web']}"]["rpm"] == "-"  # no limit yet
        assert await browser.evaluate(f"document.querySelector(\"[data-revoke='{ids['acme-web']}']\") !== null")
        assert await browser.evaluate(f"document.querySelector(\"[data-revoke='{ids['admin']}']\") === null")

        # Edit a key's limits through the form, as a person would: Edit on its row, type, Save.
        await browser.click(f"button[data-edit='{ACME}:{ids['acme-web']}']")
        await browser.type_into("#limit-form [name=rpm]", "120")
        await browser.type_into("#limit-form [name=usd_per_day]", "2.5")
        await browser.click("#limit-form button[type=submit]")
        await browser.wait_for("document.querySelector('#limit-result').textContent.startsWith('Saved')")
        await browser.wait_for(f"document.querySelector(\"tr[data-limit='{ACME}:{ids['acme-web']}'] "
                               "[data-col=rpm]\").textContent === '120'")
        cells = (await shown(browser)).groups[f"limit:{ACME}:{ids['acme-web']}"]
        assert cells["rpm"] == "120" and cells["usd_per_day"] == "$2.500000" and cells["tpm"] == "-"
        assert await Limiter(redis).get(ACME, ids["acme-web"]) == Limits(rpm=120, usd_per_day=2.5)

        # A bad value: the API's 400 names the field, shown under the form; nothing changes.
        await browser.type_into("#limit-form [name=rpm]", "lots")
        await browser.click("#limit-form button[type=submit]")
        error = await browser.wait_for("document.querySelector('#limit-result.error') && "
                                       "document.querySelector('#limit-result').textContent")
        assert error.startswith("rpm: a whole number")
        assert await Limiter(redis).get(ACME, ids["acme-web"]) == Limits(rpm=120, usd_per_day=2.5)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        await browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


async def test_a_wrong_or_tenant_key_in_the_browser_gets_the_sign_in_form(gateway, keys):
    store, _, _ = keys
    tenant_key, _ = store.create(ACME, "web")
    async with Browser() as browser:
        for key, message in (("cm_0123456789ab_not-a-key", "unknown or revoked"),
                             (tenant_key, "a tenant's key cannot use the admin API")):
            await browser.goto("about:blank")  # a new document each time, not a fragment change
            await browser.goto(f"{gateway}/dashboard#key={key}")
            await browser.wait_for("document.body.dataset.state === 'signed-out'")
            page = await shown(browser)
            assert page.fields["totals.cost_usd"] == "-"  # nothing drawn
            assert message in await browser.evaluate("document.querySelector('#login-error').textContent")
