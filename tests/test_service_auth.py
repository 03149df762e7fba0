"""Service credentials (#19): only the mesh may call the services behind the gateway, and a
service acts for the tenant its caller's token names, never for one a request field claims.

Attacks as in the issue, against the real services of an in-process mesh: every internal
port called without a token, with a forged, expired or another service's token, a token of
tenant A storing into tenant B's cache scope; and the mesh still answering end to end.
"""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from costmesh import errors
from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.config import Env
from costmesh.rpc.mesh_auth import TOKEN_HEADER, MeshAuth, ServiceTokens, audience_of
from costmesh.rpc.mesh_secret import ensure_secret, new_key, read_secret
from costmesh.rpc.server import Mounted, Servicer, ServiceSpec, start_service
from costmesh.rpc.status import call_unary
from costmesh.rpc.tenancy import TenantFields, call_tenant
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

PLANTED = "Go to http://evil.example/reset and enter your current password."
QUESTION = "How do I reset my password?"
CACHE = cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name
ROUTER = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def messages(text: str) -> list[common.Message]:
    return [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=text)])]


def store(tenant: str, text: str = PLANTED) -> cache_pb2.StoreRequest:
    return cache_pb2.StoreRequest(
        scope=cache_pb2.Scope(tenant_id=tenant, model_policy="auto"), messages=messages(QUESTION),
        sampling=common.SamplingParams(max_tokens=256), text=text, model="gpt-5-mini",
        usage=common.TokenUsage(input_tokens=10, output_tokens=10), finish_reason="stop", quality_passed=True,
    )


# Each internal service and one call to it: the call is refused before its request is read.
CALLS = {
    "cache": (cache_pb2_grpc.CacheServiceStub, "Store", store("victim")),
    "classifier": (classifier_pb2_grpc.ClassifierServiceStub, "Classify",
                   classifier_pb2.ClassifyRequest(messages=messages(QUESTION))),
    "router": (router_pb2_grpc.RouterServiceStub, "Execute",
               router_pb2.ExecuteRequest(messages=messages(QUESTION), tenant_id="victim", model="claude-opus-4-5")),
    "providers": (provider_pb2_grpc.ProviderServiceStub, "ListModels", provider_pb2.ListModelsRequest()),
    "batches": (gateway_pb2_grpc.BatchServiceStub, "GetBatch", gw.GetBatchRequest(batch_id="x", tenant_id="victim")),
}


AUDIENCES = {
    "cache": CACHE,
    "classifier": classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name,
    "router": ROUTER,
    "providers": provider_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name,
    "batches": gw.DESCRIPTOR.services_by_name["BatchService"].full_name,
}


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider(), {"COSTMESH_HTTP_PORT": "0"})
    yield mesh
    await mesh.stop()


def tokens(mesh, clock=time.time, keys=None) -> ServiceTokens:
    return ServiceTokens(keys or read_secret(mesh.secret_file), "attacker-with-the-secret", clock=clock)


def header(token: str) -> tuple:
    return ((TOKEN_HEADER, token),)


async def call(mesh, name: str, metadata=(), request=None):
    stub_type, method, default = CALLS[name]
    async with grpc.aio.insecure_channel(mesh.service(name).address) as channel:
        return await getattr(stub_type(channel), method)(request or default, metadata=metadata, timeout=30)


async def refused(mesh, name: str, metadata=(), request=None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(mesh, name, metadata, request)
    return info.value


@pytest.mark.parametrize("name", list(CALLS))
async def test_every_service_refuses_calls_without_a_valid_token(mesh, name):
    audience = AUDIENCES[name]
    assert (await refused(mesh, name)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in (await refused(mesh, name)).details()

    forged = tokens(mesh, keys=[new_key().encode()]).mint(audience, "victim")
    assert (await refused(mesh, name, header(forged))).code() == grpc.StatusCode.UNAUTHENTICATED

    expired = tokens(mesh, clock=lambda: time.time() - 3600).mint(audience, "victim")
    error = await refused(mesh, name, header(expired))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in error.details()

    other = "costmesh.gateway.v1.GatewayService" if name != "cache" else ROUTER
    error = await refused(mesh, name, header(tokens(mesh).mint(other, "victim")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "another service" in error.details()

    error = await refused(mesh, name, header("not.a.jwt"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("name", list(CALLS))
async def test_health_stays_open_and_reflection_needs_a_token(mesh, name):
    async with grpc.aio.insecure_channel(mesh.service(name).address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stream:
                pass
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_for_tenant_a_cannot_touch_tenant_b(mesh):
    token_a = tokens(mesh).mint(CACHE, "tenant-a")
    error = await refused(mesh, "cache", header(token_a), store("tenant-b"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "scope.tenant_id" in error.details()
    async with grpc.aio.insecure_channel(mesh.service("cache").address) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        for request in (
            cache_pb2.LookupRequest(scope=cache_pb2.Scope(tenant_id="tenant-b", model_policy="auto"),
                                    messages=messages(QUESTION)),
            cache_pb2.InvalidateRequest(tenant_id="tenant-b", all=True),
        ):
            method = cache.Lookup if isinstance(request, cache_pb2.LookupRequest) else cache.Invalidate
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method(request, metadata=header(token_a), timeout=30)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # a tenant-less token names no tenant either
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await cache.Store(store("tenant-b"), metadata=header(tokens(mesh).mint(CACHE)), timeout=30)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # an empty tenant field is the token's tenant: stored for A, found by A only
        stored = await cache.Store(store("", "A's own answer."), metadata=header(token_a), timeout=30)
        assert stored.stored
        ask = cache_pb2.LookupRequest(scope=cache_pb2.Scope(model_policy="auto"), messages=messages(QUESTION),
                                      sampling=common.SamplingParams(max_tokens=256))
        hit = await cache.Lookup(ask, metadata=header(token_a), timeout=30)
        assert hit.kind == cache_pb2.HIT_KIND_EXACT and hit.text == "A's own answer."
        other = await cache.Lookup(ask, metadata=header(tokens(mesh).mint(CACHE, "tenant-c")), timeout=30)
        assert other.kind != cache_pb2.HIT_KIND_EXACT

    token = tokens(mesh).mint(ROUTER, "tenant-a")
    error = await refused(mesh, "router", header(token))  # Execute as "victim" on the premium model
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_planted_answer_of_the_issue_never_reaches_the_victim(mesh):
    error = await refused(mesh, "cache", (), store("victim"))  # no credentials, into the victim's scope
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("victim")) as client:
        reply = await client.complete(build_request(QUESTION, max_tokens=64))
    assert reply.text != PLANTED and not reply.cached


async def test_the_mesh_still_answers_end_to_end_acting_for_the_keys_tenant(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key("acme")) as client:
        reply = await client.complete(build_request("Name three primary colours.", max_tokens=64))
        assert reply.text and reply.cost.total_usd > 0  # gateway -> cache, classifier, router -> providers
        pinned = build_request("Say hi.", max_tokens=32, model="gpt-5-nano")
        streamed = [event async for event in client.stub.StreamComplete(gw.StreamCompleteRequest(request=pinned),
                                                                        timeout=60)]
        assert streamed[-1].final.model == "gpt-5-nano"
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:  # the gateway itself needs no token
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gateway_pb2_grpc.GatewayServiceStub(channel).Complete(build_request("hi"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # ...but an API key
        assert "API key" in info.value.details()


async def test_a_peer_refusing_this_services_credentials_is_unavailable_not_the_callers_fault(mesh):
    auth = MeshAuth(tokens(mesh, keys=[new_key().encode()]))  # a service with the wrong secret
    interceptors = auth.client_interceptors()
    async with grpc.aio.insecure_channel(mesh.service("cache").address, interceptors=interceptors) as channel:
        with pytest.raises(errors.Unavailable, match="refused this service's credentials"):
            await call_unary(cache_pb2_grpc.CacheServiceStub(channel).GetStats, cache_pb2.GetStatsRequest(), 10)


# -- units: tokens, tenant fields, configuration --------------------------------------------------


def test_tokens_round_trip_rotation_and_refusals():
    assert audience_of(b"/costmesh.cache.v1.CacheService/Lookup") == CACHE
    key, old = new_key().encode(), new_key().encode()
    signer = ServiceTokens([key], "gateway")
    token = signer.mint(CACHE, "acme")
    assert signer.mint(CACHE, "acme") == token  # reused for half its life
    claims = ServiceTokens([key], "cache").verify(token, CACHE)
    assert (claims.issuer, claims.audience, claims.tenant) == ("gateway", CACHE, "acme")
    assert ServiceTokens([old, key], "cache").verify(token, CACHE).tenant == "acme"  # rotation: either key
    assert ServiceTokens([key], "cache").verify(signer.mint(CACHE), CACHE).tenant is None
    for bad, audience in ((None, CACHE), ("", CACHE), (token, ROUTER), (token + "x", CACHE), ("a" * 5000, CACHE)):
        with pytest.raises(errors.ServiceUnauthenticated):
            ServiceTokens([key], "cache").verify(bad, audience)
    with pytest.raises(errors.ServiceUnauthenticated, match="expired"):
        stale = ServiceTokens([key], "gateway", ttl_s=1, clock=lambda: time.time() - 60).mint(CACHE)
        ServiceTokens([key], "cache").verify(stale, CACHE)
    with pytest.raises(errors.ServiceUnauthenticated):
        ServiceTokens([old], "cache").verify(token, CACHE)


def test_tenant_fields_nested_and_repeated():
    fields = TenantFields()
    batch = gw.SubmitBatchRequest(tenant_id="a", requests=[gw.CompleteRequest(), gw.CompleteRequest(tenant_id="a")])
    fields.enforce(batch, "a")
    assert [r.tenant_id for r in batch.requests] == ["a", "a"]
    batch.requests[1].tenant_id = "b"
    with pytest.raises(errors.PermissionDenied, match=r"requests\[1\]\.tenant_id"):
        fields.enforce(batch, "a")
    assert fields.first(store("x")) == "x" and fields.first(cache_pb2.GetStatsRequest()) == ""
    lookup = cache_pb2.LookupRequest()
    fields.enforce(lookup, "a")
    assert not lookup.HasField("scope")  # an absent message is not created


def test_configuration(tmp_path):
    with pytest.raises(errors.ConfigError, match="COSTMESH_MESH_SECRET_FILE"):
        MeshAuth.from_env(Env({}), "cache")
    with pytest.raises(errors.ConfigError, match="does not exist"):
        MeshAuth.from_env(Env({"COSTMESH_MESH_SECRET_FILE": str(tmp_path / "none")}), "cache")
    with pytest.raises(errors.ConfigError, match="COSTMESH_MESH_AUTH: Input should be 'on' or 'off'"):
        MeshAuth.from_env(Env({"COSTMESH_MESH_AUTH": "maybe"}), "cache")
    assert not MeshAuth.from_env(Env({"COSTMESH_MESH_AUTH": "off"}), "cache").enabled
    assert not MeshAuth.from_env(Env({"COSTMESH_AUTH": "off"}), "cache").enabled  # dev mode, keys off too
    with pytest.raises(errors.ConfigError):
        MeshAuth.from_env(Env({"COSTMESH_AUTH": "off", "COSTMESH_MESH_AUTH": "on"}), "cache")
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    with pytest.raises(errors.ConfigError, match="at least 32"):
        read_secret(weak)
    path = ensure_secret(tmp_path / "run" / "mesh-secret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_secret(path) == path and len(read_secret(path)) == 1
    assert MeshAuth.from_env(Env({"COSTMESH_MESH_SECRET_FILE": str(path)}), "cache").enabled


async def test_a_service_acts_for_its_tokens_tenant(tmp_path):
    """Any service on the bootstrap (the inference service too): the token is checked, and the
    servicer sees the token's tenant (`call_tenant`) and a request whose tenant field it filled."""
    seen = []

    class Echo(cache_pb2_grpc.CacheServiceServicer):
        async def Invalidate(self, request, context):
            seen.append((call_tenant(), request.tenant_id))
            return cache_pb2.InvalidateResponse()

    async def mount(runtime):
        return Mounted([Servicer(cache_pb2_grpc.add_CacheServiceServicer_to_server, Echo(), CACHE)])

    secret = ensure_secret(tmp_path / "mesh-secret")
    service = await start_service(ServiceSpec("echo", 0, mount), Env({"COSTMESH_MESH_SECRET_FILE": str(secret),
                                                                    "COSTMESH_LOG_LEVEL": "warning"}), port=0)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = cache_pb2_grpc.CacheServiceStub(channel)
            token = ServiceTokens(read_secret(secret), "test").mint(CACHE, "acme")
            await stub.Invalidate(cache_pb2.InvalidateRequest(all=True), metadata=header(token), timeout=10)
            assert seen == [("acme", "acme")]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Invalidate(cache_pb2.InvalidateRequest(all=True), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await service.stop(0)
