"""TLS at the gateway (#19): gRPC and HTTP with a certificate and key from files, reloaded when they
change; plaintext only on loopback or when COSTMESH_TLS=off says so; the clients connect with a
root certificate file."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.client import AsyncClient, Client
from costmesh.config import Env
from costmesh.errors import ConfigError, Unavailable, UpstreamTimeout
from costmesh.rpc.tls import CertificateFiles, EdgeTls
from costmesh.services.simulator import start_simulator
from costmesh.tooling.launcher import _wait_healthy
from costmesh.tooling.mesh_client import GatewayClient, build_request
from costmesh.tooling.tls_cert import make_tls_files

from inprocess_mesh import start_inprocess_mesh

RPC_TIMEOUT_S = 30


# -- settings ---------------------------------------------------------------------------------


def test_plaintext_only_on_loopback_unless_tls_is_explicitly_off(tmp_path):
    edge = EdgeTls.from_env(Env({}))
    assert not edge.enabled and edge.grpc_credentials("127.0.0.1") is None and edge.http_context("::1") is None
    for host in ("0.0.0.0", "10.1.2.3", "gateway.example"):
        with pytest.raises(ConfigError, match="refusing plaintext.*COSTMESH_TLS=off"):
            edge.grpc_credentials(host)
        with pytest.raises(ConfigError, match="refusing plaintext"):
            edge.http_context(host)
    off = EdgeTls.from_env(Env({"COSTMESH_TLS": "off"}))
    assert off.grpc_credentials("0.0.0.0") is None and off.http_context("0.0.0.0") is None
    with pytest.raises(ConfigError, match="COSTMESH_TLS=on needs"):
        EdgeTls.from_env(Env({"COSTMESH_TLS": "on"}))
    with pytest.raises(ConfigError, match="go together"):
        EdgeTls.from_env(Env({"COSTMESH_TLS_CERT_FILE": "/x/cert.pem"}))
    with pytest.raises(ConfigError, match="COSTMESH_TLS: Input should be"):
        EdgeTls.from_env(Env({"COSTMESH_TLS": "maybe"}))
    files = make_tls_files(tmp_path)
    on = EdgeTls.from_env(Env({"COSTMESH_TLS_CERT_FILE": str(files.cert_file),
                               "COSTMESH_TLS_KEY_FILE": str(files.key_file)}))
    assert on.enabled and on.grpc_credentials("0.0.0.0") is not None
    assert isinstance(on.http_context("0.0.0.0"), ssl.SSLContext)
    assert oct(files.key_file.stat().st_mode & 0o777) == "0o600"
    missing = EdgeTls.from_env(Env({"COSTMESH_TLS_CERT_FILE": str(tmp_path / "none.pem"),
                                    "COSTMESH_TLS_KEY_FILE": str(files.key_file)}))
    with pytest.raises(ConfigError, match="TLS certificate"):  # fails at start, not at the first handshake
        missing.grpc_credentials("0.0.0.0")


def test_certificate_files_reload_when_changed_and_skip_a_half_rotated_pair(tmp_path):
    served = make_tls_files(tmp_path / "served")
    clock = SimpleNamespace(t=0.0)
    files = CertificateFiles(served.cert_file, served.key_file, clock=lambda: clock.t)
    first = files.current()
    fresh = make_tls_files(tmp_path / "fresh")
    shutil.copy(fresh.cert_file, tmp_path / "cert.tmp")
    os.replace(tmp_path / "cert.tmp", served.cert_file)  # the certificate replaced, not yet its key
    clock.t += 2
    assert files.current() == first  # a mismatched pair is never served
    shutil.copy(fresh.key_file, tmp_path / "key.tmp")
    os.replace(tmp_path / "key.tmp", served.key_file)
    clock.t += 0.5
    assert files.current() == first  # looked at most once a second
    clock.t += 1
    second = files.current()
    assert second.generation == first.generation + 1 and second.cert_pem == fresh.cert_file.read_bytes()


# -- a mesh whose gateway serves TLS ---------------------------------------------------------


@pytest.fixture(scope="module")
async def tls_mesh(redis_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    files = make_tls_files(directory / "served")
    simulator = await start_simulator(port=0, books=[])
    env = {"COSTMESH_TLS_CERT_FILE": str(files.cert_file), "COSTMESH_TLS_KEY_FILE": str(files.key_file)}
    mesh = await asyncio.wait_for(start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), extra_env=env),
                                  180)
    mesh.tls_files, mesh.tls_dir, mesh.current_ca = files, directory, files.ca_file
    mesh.https_url = mesh.http_url.replace("http://", "https://")
    yield mesh
    await mesh.stop()
    await simulator.stop()


def _ssl(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def _http_models(mesh, ca_file: Path) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{mesh.https_url}/models", ssl=_ssl(ca_file),
                               headers={"authorization": f"Bearer {mesh.api_key('tls')}"},
                               timeout=aiohttp.ClientTimeout(total=10)) as reply:
            return reply.status


async def _grpc_stats(mesh, ca_file: Path) -> gw.GetStatsResponse:
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("tls"), ca_file=ca_file) as client:
        return await client.stats()


async def test_grpc_and_http_answer_over_tls_and_refuse_plaintext(tls_mesh):
    mesh, ca = tls_mesh, tls_mesh.tls_files.ca_file
    async with AsyncClient(mesh.gateway, mesh.api_key("tls"), ca_file=ca, timeout_s=RPC_TIMEOUT_S) as client:
        answer = await client.complete("What does TLS stand for?", max_tokens=32)
        assert answer.text

    def blocking_stats() -> int:  # the blocking client, off the event loop the gateway runs on
        with Client(mesh.gateway, mesh.api_key("tls"), ca_file=ca, timeout_s=RPC_TIMEOUT_S) as client:
            return client.stats().requests

    assert await asyncio.to_thread(blocking_stats) >= 1
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("tls"), ca_file=ca) as client:
        reply = await client.complete(build_request("And SSL?", max_tokens=32))
        assert reply.text
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:  # plaintext: no handshake, no answer
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gateway_pb2_grpc.GatewayServiceStub(channel).GetStats(gw.GetStatsRequest(), timeout=5)
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises((Unavailable, UpstreamTimeout)):  # a CA the gateway's certificate is not from
        async with AsyncClient(mesh.gateway, mesh.api_key("tls"), ca_file=make_tls_files(
                mesh.tls_dir / "stranger").ca_file, timeout_s=5) as client:
            await client.stats()

    assert await _http_models(mesh, ca) == 200
    async with aiohttp.ClientSession() as session:  # plain HTTP to the TLS port gets no answer
        with pytest.raises(aiohttp.ClientError):
            async with session.get(mesh.http_url + "/models", timeout=aiohttp.ClientTimeout(total=5)) as reply:
                await reply.read()


async def test_a_new_certificate_is_served_without_a_restart(tls_mesh):
    mesh, served = tls_mesh, tls_mesh.tls_files
    old_ca = served.ca_file
    fresh = make_tls_files(mesh.tls_dir / "rotated")  # another CA: only its clients accept the new certificate
    for name in ("key.pem", "cert.pem"):  # as a Secret update or `costmesh tls-cert --force` would
        shutil.copy(fresh.cert_file.parent / name, served.cert_file.parent / f".{name}.new")
        os.replace(served.cert_file.parent / f".{name}.new", served.cert_file.parent / name)
    mesh.current_ca = fresh.ca_file
    await asyncio.sleep(1.2)  # the files are looked at, at most, once a second
    deadline = time.monotonic() + 10
    while True:  # the first handshake after the change triggers the reload
        try:
            await _grpc_stats(mesh, fresh.ca_file)
            break
        except grpc.aio.AioRpcError:
            assert time.monotonic() < deadline, "the gRPC port never served the new certificate"
            await asyncio.sleep(0.3)
    assert await _http_models(mesh, fresh.ca_file) == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the old certificate is gone
        await _http_models(mesh, old_ca)
    with pytest.raises(grpc.aio.AioRpcError):
        await asyncio.wait_for(_grpc_stats(mesh, old_ca), 10)


async def test_the_launcher_waits_for_a_tls_gateway_with_its_ca(tls_mesh):
    process = SimpleNamespace(name="gateway", address=tls_mesh.gateway, log_path=Path("gateway.log"),
                              popen=SimpleNamespace(poll=lambda: None))
    await asyncio.to_thread(_wait_healthy, process, 10.0, tls_mesh.current_ca)


async def test_the_gateway_refuses_to_start_plaintext_on_a_public_address(tls_mesh):
    from costmesh.gateway.service import SPEC as GATEWAY
    from costmesh.rpc.server import start_service

    env = {"COSTMESH_MESH_SECRET_FILE": str(tls_mesh.secret_file), "COSTMESH_API_KEYS_FILE": str(tls_mesh.keys_file),
           "COSTMESH_CACHE_ADDR": "127.0.0.1:1", "COSTMESH_CLASSIFIER_ADDR": "127.0.0.1:1",
           "COSTMESH_ROUTER_ADDR": "127.0.0.1:1", "COSTMESH_HTTP_PORT": "0", "COSTMESH_LOG_LEVEL": "warning"}
    with pytest.raises(ConfigError, match="refusing plaintext on 0.0.0.0"):
        await start_service(GATEWAY, Env(env), tracer_provider=TracerProvider(), port=0, host="0.0.0.0")
    explicit = await start_service(GATEWAY, Env({**env, "COSTMESH_TLS": "off"}), tracer_provider=TracerProvider(),
                                   port=0, host="0.0.0.0")
    await explicit.stop(0.1)


async def test_the_container_health_check_speaks_tls_to_a_tls_gateway(tls_mesh, monkeypatch):
    import importlib.util

    script = Path(__file__).parents[1] / "deploy/docker/healthcheck.py"
    spec = importlib.util.spec_from_file_location("healthcheck", script)
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    port = tls_mesh.gateway.rsplit(":", 1)[1]
    monkeypatch.setenv("COSTMESH_TLS_CERT_FILE", str(tls_mesh.tls_files.cert_file))
    monkeypatch.setenv("COSTMESH_TLS_CA_FILE", str(tls_mesh.current_ca))
    assert await asyncio.to_thread(healthcheck.main, ["--port", port]) == 0
    monkeypatch.setenv("COSTMESH_TLS", "off")  # plaintext against the TLS port: unhealthy
    assert await asyncio.to_thread(healthcheck.main, ["--port", port, "--timeout", "2"]) == 1


async def test_the_node_client_connects_with_its_ca_file(tls_mesh):
    from test_node_client import NODE_DIR, node

    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.skip("the Node client's dependencies are not installed (tests/test_node_client.py installs them)")
    key = tls_mesh.api_key("node-tls")
    code, reply = await node(NODE_DIR / "example.js", "--target", tls_mesh.gateway, "--ca-file",
                             str(tls_mesh.current_ca), "--max-tokens", "32", "What is a certificate?", api_key=key)
    assert code == 0 and reply["text"], reply
    code, refused = await node(NODE_DIR / "example.js", "--target", tls_mesh.gateway, "--timeout-ms", "3000",
                               "What is a certificate?", api_key=key)  # plaintext to the TLS port
    assert code == 1 and refused["error"]["name"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), refused
