"""`costmesh serve` prints the dashboard's address on the gateway's HTTP port and an admin key for
it, minted into the key file (or, a kept key file that has one, says where it is instead of
minting another). start_mesh is stubbed; the gateway's HTTP app (`HttpApi` with the admin API)
runs for real in a thread, so the printed key is checked against the printed address."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.catalog import load_catalog
from costmesh.gateway.admin.api import AdminApi
from costmesh.gateway.auth import Authenticator, KeyStore
from costmesh.gateway.http.app import HttpApi
from costmesh.gateway.http.server import start_http
from costmesh.tooling import serve
from costmesh.tooling.launcher import Mesh, Process

ADMIN_LINE = re.compile(r"^admin key \(dashboard\):   (cm_\S+)", re.M)
DASHBOARD_LINE = re.compile(r"^dashboard \(admin\):       (http://\S+/dashboard)", re.M)


def fetch(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def http_gateway(tmp_path):
    """The gateway's HTTP app over `keys` (the key file serve keeps), in a thread of its own."""
    keys = tmp_path / "keys" / "api-keys.json"
    KeyStore(keys).ensure_file()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box = {}

    async def start():
        auth = Authenticator(KeyStore(keys))
        admin = AdminApi(auth, records_dir=tmp_path / "records", limiter=None, cache_stats=None)
        api = HttpApi(None, auth, load_catalog(), TracerProvider().get_tracer("t"), 1 << 20,
                  more_routes=admin.add_routes)
        box["port"], box["close"] = await start_http(api, "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(30)
    yield keys, f"http://127.0.0.1:{box['port']}"
    asyncio.run_coroutine_threadsafe(box["close"](), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def stubbed(monkeypatch, tmp_path, http_gateway):
    keys, base = http_gateway
    monkeypatch.delenv("COSTMESH_API_KEYS_FILE", raising=False)

    def fake_start_mesh(run_dir, extra_env=None, *, gateway_port=None, **_kw):
        env = {**(extra_env or {})}
        mesh = Mesh(Path(run_dir), env, http_url=f"{base}/v1")
        mesh.processes["gateway"] = Process("gateway", None, f"127.0.0.1:{gateway_port}", Path(run_dir) / "g.log")
        mesh.stop = lambda: None
        return mesh

    runs = iter(range(100))

    def mkdtemp(**_kw):
        path = tmp_path / f"run{next(runs)}"
        path.mkdir()
        return str(path)

    monkeypatch.setattr(serve, "start_mesh", fake_start_mesh)
    monkeypatch.setattr(serve.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(serve.tempfile, "mkdtemp", mkdtemp)
    return monkeypatch, keys, base


def test_serve_prints_the_dashboard_on_the_http_port_and_an_admin_key_that_opens_it(stubbed, tmp_path, capsys):
    monkeypatch, keys, base = stubbed
    seen = {}

    def while_serving():
        out = capsys.readouterr().out
        seen["out"] = out
        dashboard = DASHBOARD_LINE.search(out).group(1)
        admin_key = ADMIN_LINE.search(out).group(1)
        demo_key = re.search(r"^API key for tenant 'demo': (cm_\S+)", out, re.M).group(1)
        root = dashboard.removesuffix("/dashboard")
        seen["page"] = urllib.request.urlopen(dashboard, timeout=10).status
        seen["admin"] = fetch(f"{root}/admin/api/v1/keys", admin_key)
        seen["tenant"] = fetch(f"{root}/admin/api/v1/keys", demo_key)
        seen["none"] = fetch(f"{root}/admin/api/v1/keys")
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.signal, "pause", while_serving)
    assert serve.serve_forever(6200, 6201, tmp_path / "records", keys_file=keys) == 0
    assert f"dashboard (admin):       {base}/dashboard (sign in with the admin key)" in seen["out"]
    assert re.search(rf"^admin key \(dashboard\):   cm_\S+ \(saved in {re.escape(str(keys))}\)$", seen["out"], re.M)
    assert seen["page"] == 200
    status, listed = seen["admin"]
    assert status == 200 and sorted(k["role"] for k in listed["keys"]) == ["admin", "tenant"]
    assert seen["tenant"][0] == 403 and seen["none"][0] == 401

    # A kept key file with an admin key: none minted again, the one shown before still works.
    monkeypatch.setattr(serve.signal, "pause", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    assert serve.serve_forever(6200, 6201, tmp_path / "records", keys_file=keys) == 0
    out = capsys.readouterr().out
    assert ADMIN_LINE.search(out) is None
    assert f"admin key:               kept in {keys}" in out
    assert sum(r.admin for r in KeyStore(keys).records()) == 1


def test_without_the_http_port_there_is_no_dashboard(stubbed, tmp_path, capsys):
    monkeypatch, _, _ = stubbed
    monkeypatch.setattr(serve, "start_mesh", lambda run_dir, extra_env=None, **_kw: _no_http(run_dir, extra_env))
    monkeypatch.setattr(serve.signal, "pause", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    assert serve.serve_forever(6200, 0, tmp_path / "records") == 0
    out = capsys.readouterr().out
    assert "dashboard (admin):       off (--http-port 0" in out and "admin key" not in out


def _no_http(run_dir, extra_env) -> Mesh:
    env = {**(extra_env or {}), "COSTMESH_API_KEYS_FILE": str(Path(run_dir) / "api-keys.json")}
    KeyStore(env["COSTMESH_API_KEYS_FILE"]).ensure_file()
    mesh = Mesh(Path(run_dir), env, http_url=None)
    mesh.processes["gateway"] = Process("gateway", None, "127.0.0.1:6200", Path(run_dir) / "g.log")
    mesh.stop = lambda: None
    return mesh
