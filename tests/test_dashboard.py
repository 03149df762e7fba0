"""`costmesh dashboard`: its JSON API against the cost records, the admin token, key creation and
revocation through the gateway's key store, and the page in a real browser (Debian's headless
chromium), whose numbers are checked against the records; its screenshot is kept in
build/artifacts/dashboard.png."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
import structlog

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.config import Env
from costmesh.cost_records import CostRecorder, bind_key_id, read_records
from costmesh.errors import ConfigError, Unauthenticated, UpstreamError
from costmesh.gateway.auth import Authenticator, KeyStore
from costmesh.tooling.cli import main
from costmesh.tooling.dashboard import app as dashboard_app
from costmesh.tooling.dashboard.admin_token import AdminToken, load_admin_token
from costmesh.tooling.dashboard.app import Dashboard, DashboardSettings, start_dashboard
from costmesh.tooling.mesh_client import build_request
from costmesh.tooling.report.breakdown import breakdown
from costmesh.tooling.report.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "artifacts"
TOKEN = "t0ken-for-the-dashboard-tests-0123456789abcdef"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
SINCE, UNTIL = START - 3600, START + 6 * 3600
PERIOD = f"since={int(SINCE)}&until={int(UNTIL)}"
EMBEDDING = 0.00001


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
    """The gateway's key file with three keys of two tenants; their ids."""
    store = KeyStore(tmp_path / "api-keys.json")
    ids = {name: store.create(tenant, name)[1].key_id
           for name, tenant in (("acme-web", "acme"), ("acme-batch", "acme"), ("globex-app", "globex"))}
    return store, ids


@pytest.fixture
def records(tmp_path, keys):
    """Six hours of traffic from three keys (as the gateway records it: the key id bound per call)."""
    _, ids = keys
    directory = tmp_path / "records"
    now = [START]
    recorder = CostRecorder(directory, clock=lambda: now[0], writer_id="gw")
    simple, moderate, complex_ = common.TIER_SIMPLE, common.TIER_MODERATE, common.TIER_COMPLEX
    traffic = [
        ("acme-web", "acme", answer("gpt-5-mini", simple, simple, 0.0011, 0.0200)),
        ("acme-web", "acme", cached(0.0200, exact=True)),
        ("acme-web", "acme", cached(0.0200, exact=False)),
        ("acme-batch", "acme", answer("gpt-5-mini", simple, simple, 0.0009, 0.0150)),
        ("globex-app", "globex", answer("claude-sonnet-4-5", complex_, moderate, 0.0180, 0.0250)),
        ("globex-app", "globex", answer("claude-haiku-4-5", moderate, moderate, 0.0040, 0.0250)),
        ("globex-app", "globex", UpstreamError("anthropic: 529 overloaded")),
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
async def dashboard(records, keys):
    store, _ = keys
    app = Dashboard(DashboardSettings(records, store.path), AdminToken(TOKEN, "test"), Env({}))
    runner, port = await start_dashboard(app, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(url: str, headers: dict | None = None) -> tuple[int, dict | str, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        body = await reply.json() if reply.content_type == "application/json" else await reply.text()
        return reply.status, body, reply.headers


async def post(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


# -- the API -------------------------------------------------------------------------------------


async def test_the_api_refuses_calls_without_the_admin_token(dashboard, keys):
    store, _ = keys
    key, _ = store.create("acme")  # a tenant's API key is no admin credential
    for headers in (None, admin("wrong-" + TOKEN), {"Authorization": f"Bearer {key}"}, {"Authorization": TOKEN}):
        for path in ("/api/v1/spend", "/api/v1/keys", "/api/v1/verifier"):
            status, body, _ = await get(dashboard + path, headers)
            assert status == 401, (path, headers)
            assert body["error"]["code"] == "invalid_api_key"
        status, _ = await post(dashboard + "/api/v1/keys", {"tenant": "evil"}, headers)
        assert status == 401
    assert all(r.tenant != "evil" for r in store.records())
    status, page, headers = await get(dashboard + "/dashboard")  # the page holds no data: it asks the API
    assert status == 200 and "costmesh" in page and "$0." not in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


async def test_spend_answers_the_records_totals_and_groups(dashboard, records):
    status, body, headers = await get(f"{dashboard}/api/v1/spend?{PERIOD}", admin())
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


async def test_spend_bounds_its_inputs_and_its_groups(dashboard):
    status, body, _ = await get(f"{dashboard}/api/v1/spend?{PERIOD}&top=1", admin())
    assert status == 200
    for dimension in ("tenant", "key", "model"):
        assert len(body["by"][dimension]["groups"]) == 1 and body["by"][dimension]["others"]
    for query, message in ((f"{PERIOD}&top=101", "top: a number from 1 to 100"),
                           (f"{PERIOD}&top=x", "top: a number"),
                           ("since=" + "1" * 65, "since: at most 64 characters"),
                           ("since=yesterday", "since: 'yesterday' is not a time"),
                           (f"since={int(UNTIL)}&until={int(SINCE)}", "until: must be after since")):
        status, body, _ = await get(f"{dashboard}/api/v1/spend?{query}", admin())
        assert status == 400 and message in body["error"]["message"], query


async def test_keys_made_and_revoked_here_work_and_stop_at_the_gateway(dashboard, keys, monkeypatch, request):
    store, ids = keys
    gateway = Authenticator(KeyStore(store.path))  # the gateway's own reader of the same file
    # Earlier tests may have configured structlog for a service at level warning, with loggers
    # cached on first use: log at every level here, through a logger bound now.
    saved = structlog.get_config()
    request.addfinalizer(lambda: structlog.configure(**saved))
    monkeypatch.setattr(dashboard_app, "log", structlog.get_logger())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
                        cache_logger_on_first_use=False)
    with structlog.testing.capture_logs() as logs:
        status, created = await post(dashboard + "/api/v1/keys", {"tenant": "initech", "name": "ops"}, admin())
        assert status == 201 and created["tenant"] == "initech" and created["key"].startswith("cm_")
        assert gateway.authenticate(f"Bearer {created['key']}").tenant == "initech"
        status, listed, _ = await get(dashboard + "/api/v1/keys", admin())
        assert status == 200 and listed["managed"] and listed["active"] == 4
        assert all("key" not in k and "sha256" not in k for k in listed["keys"])
        status, revoked = await post(f"{dashboard}/api/v1/keys/{created['key_id']}/revoke", None, admin())
        assert status == 200 and revoked["active"] is False and revoked["revoked_at"]
        with pytest.raises(Unauthenticated):
            gateway.authenticate(f"Bearer {created['key']}")
        status, body = await post(f"{dashboard}/api/v1/keys/{'f' * 12}/revoke", None, admin())
        assert status == 404 and body["error"]["code"] == "not_found"
        for bad in ({"tenant": ""}, {"tenant": "a b"}, {"tenant": "x" * 65}, {"tenant": "ok", "name": "x" * 101},
                    ["tenant"]):
            status, body = await post(dashboard + "/api/v1/keys", bad, admin())
            assert status == 400, bad
        status, body = await post(f"{dashboard}/api/v1/keys/not-hex/revoke", None, admin())
        assert status == 400
    logged = json.dumps(logs)
    assert created["key"] not in logged and created["key"].rsplit("_", 1)[-1] not in logged
    assert TOKEN not in logged
    assert {"api key created", "api key revoked"} <= {entry["event"] for entry in logs}


async def test_the_verifier_operating_point_is_the_configured_one(dashboard):
    status, body, _ = await get(dashboard + "/api/v1/verifier", admin())
    assert status == 200 and body["available"]
    assert body["verifier"].startswith("learned-v1") and body["max_false_hit_rate"] == 0.05
    assert 0 < body["threshold"] < 1 and body["calibrated_false_hit_rate"] <= 0.05


# -- the admin token -----------------------------------------------------------------------------


def test_the_dashboard_never_runs_open(tmp_path, monkeypatch, capsys):
    for name in ("COSTMESH_ADMIN_TOKEN_FILE", "COSTMESH_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="needs an admin token"):
        load_admin_token(None, None)
    assert main(["dashboard", "--records-dir", str(tmp_path)]) == 2
    assert "never runs open" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_admin_token(None, "short")


def test_a_missing_token_file_is_made_private_and_then_reused(tmp_path):
    path = tmp_path / "admin-token"
    first, created = load_admin_token(str(path), None)
    assert created and path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    first.check(f"Bearer {token}")
    again, created = load_admin_token(str(path), "ignored-when-a-file-is-given-0123456789")
    assert not created
    again.check(f"Bearer {token}")
    with pytest.raises(Unauthenticated):
        again.check(f"Bearer {token}x")


# -- the page in a real browser ------------------------------------------------------------------


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
        if tag == "tr" and attrs.get("data-group"):
            self._row = attrs["data-group"]
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


async def chromium(*args: str) -> str:
    path = shutil.which("chromium")
    assert path, "chromium is not installed: bash scripts/test_tools.sh (apt-get install -y chromium)"
    process = await asyncio.create_subprocess_exec(
        path, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
        "--window-size=1400,2300", "--virtual-time-budget=15000", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


def usd(value: float) -> str:
    return f"${value:.6f}"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


async def test_the_page_shows_the_records_numbers_in_a_real_browser(dashboard, records, keys):
    url = f"{dashboard}/dashboard?{PERIOD}#token={TOKEN}"  # the fragment never reaches the server
    page = Page()
    page.feed(await chromium("--dump-dom", url))
    assert page.state == "ready", page.fields
    rows = list(read_records(records))
    summary = summarize(rows, SINCE, UNTIL)
    assert page.fields["totals.cost_usd"] == usd(round(summary.cost_usd, 6))
    assert page.fields["totals.baseline_usd"] == usd(round(summary.baseline_usd, 6))
    assert page.fields["totals.saving_usd"] == usd(round(summary.saving_usd, 6))
    assert page.fields["totals.saving_ratio"] == pct(round(summary.saving_ratio, 4))
    assert page.fields["totals.requests"] == "7" and page.fields["totals.failed"] == "1"
    assert page.fields["cache.hit_rate"] == pct(round(summary.hit_rate, 4))
    assert page.fields["routing.upgrade_rate"] == pct(summary.upgrade_rate)
    _, ids = keys
    for dimension in ("tenant", "key", "model"):
        for group in breakdown(rows, dimension, SINCE, UNTIL).groups:
            shown = page.groups[f"{dimension}:{group.name}"]
            assert shown["requests"] == str(group.requests)
            assert shown["cost_usd"] == usd(round(group.cost_usd, 6)), (dimension, group.name)
            assert shown["saving_usd"] == usd(round(group.saving_usd, 6))
    # globex's key: two answers (each with its embedding) and a failed request, which cost nothing
    assert page.groups[f"key:{ids['globex-app']}"]["cost_usd"] == usd(0.018 + 0.004 + 2 * EMBEDDING)
    assert page.groups["tenant:acme"]["hit_rate"] == "50.0%"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    await chromium(f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


async def test_a_wrong_token_in_the_browser_gets_the_sign_in_form(dashboard):
    page = Page()
    page.feed(await chromium("--dump-dom", f"{dashboard}/dashboard#token=not-the-token"))
    assert page.state == "signed-out"
    assert page.fields["totals.cost_usd"] == "-"  # nothing drawn
