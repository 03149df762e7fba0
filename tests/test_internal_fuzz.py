"""Property-based fuzzing of every internal service's gRPC requests (issue #19): each RPC of the
cache, classifier, router, providers and batches services, called over the wire with a valid
mesh token and hypothesis-made request bytes (valid requests with bytes flipped, cut or added,
and arbitrary bytes), answers within its deadline with a status other than UNKNOWN, INTERNAL
or DEADLINE_EXCEEDED: no crash, no hang, no traceback for any input."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.provider.v1 import provider_pb2
from costmesh.api.router.v1 import router_pb2
from costmesh.rpc.mesh_auth import TOKEN_HEADER, ServiceTokens
from costmesh.rpc.mesh_secret import read_secret
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

TENANT = "fuzz-tenant"
DEADLINE_S = 20.0
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
USER = [common.Message(role=common.ROLE_USER, content=[common.ContentPart(text="What is 2 + 2?")])]
SCOPE = cache_pb2.Scope(tenant_id=TENANT, model_policy="auto")
SAMPLING = common.SamplingParams(max_tokens=64)

# (service name in the mesh, the service's descriptor, a valid request per method to mutate)
SERVICES = [
    ("cache", cache_pb2.DESCRIPTOR.services_by_name["CacheService"], {
        "Lookup": cache_pb2.LookupRequest(scope=SCOPE, messages=USER, sampling=SAMPLING),
        "Store": cache_pb2.StoreRequest(scope=SCOPE, messages=USER, sampling=SAMPLING, text="Four.",
                                        finish_reason="stop", quality_passed=True),
        "Invalidate": cache_pb2.InvalidateRequest(tenant_id=TENANT, tags=["t"]),
    }),
    ("classifier", classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"], {
        "Classify": classifier_pb2.ClassifyRequest(messages=USER),
    }),
    ("router", router_pb2.DESCRIPTOR.services_by_name["RouterService"], {
        "Execute": router_pb2.ExecuteRequest(messages=USER, sampling=SAMPLING, tenant_id=TENANT),
        "StreamExecute": router_pb2.StreamExecuteRequest(messages=USER, sampling=SAMPLING, tenant_id=TENANT),
        "Plan": router_pb2.PlanRequest(tier=common.TIER_SIMPLE),
    }),
    ("providers", provider_pb2.DESCRIPTOR.services_by_name["ProviderService"], {
        "Generate": provider_pb2.GenerateRequest(model="gpt-5-nano", messages=USER, sampling=SAMPLING,
                                                 tenant_id=TENANT),
        "StreamGenerate": provider_pb2.StreamGenerateRequest(model="gpt-5-nano", messages=USER, sampling=SAMPLING,
                                                             tenant_id=TENANT),
    }),
    ("batches", gw.DESCRIPTOR.services_by_name["BatchService"], {
        "GetBatch": gw.GetBatchRequest(batch_id="b", tenant_id=TENANT),
        "CancelBatch": gw.CancelBatchRequest(batch_id="b", tenant_id=TENANT),
    }),
]
METHODS = [(name, service, method.name) for name, service, _ in SERVICES for method in service.methods]


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


def baseline(name: str, method: str) -> bytes:
    for service_name, _, requests in SERVICES:
        if service_name == name and method in requests:
            return requests[method].SerializeToString()
    return b""


def mutated(seed: bytes):
    """A valid request with bytes flipped, cut short or followed by junk; or arbitrary bytes."""
    flips = st.lists(st.tuples(st.integers(0, max(len(seed) - 1, 0)), st.integers(1, 255)), max_size=4)

    def apply(args):
        changes, cut, junk = args
        data = bytearray(seed)
        for at, xor in changes:
            if data:
                data[at] ^= xor
        return bytes(data[: cut if cut is not None else len(data)]) + junk

    structured = st.tuples(flips, st.none() | st.integers(0, len(seed)), st.binary(max_size=16)).map(apply)
    return structured | st.binary(max_size=256)


async def call(mesh, name: str, service, method: str, raw: bytes) -> grpc.StatusCode:
    descriptor = service.methods_by_name[method]
    path = f"/{service.full_name}/{method}"
    token = ServiceTokens(read_secret(mesh.secret_file), "fuzzer").mint(service.full_name, TENANT)
    metadata = ((TOKEN_HEADER, token),)
    async with grpc.aio.insecure_channel(mesh.service(name).address) as channel:
        identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            if descriptor.server_streaming:
                async for _ in channel.unary_stream(path, **identity)(raw, metadata=metadata, timeout=DEADLINE_S):
                    pass
            else:
                await channel.unary_unary(path, **identity)(raw, metadata=metadata, timeout=DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("name, service, method", METHODS, ids=[f"{n}.{m}" for n, _, m in METHODS])
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
async def test_fuzzed_internal_requests_never_crash_or_hang(mesh, name, service, method, data):
    raw = data.draw(mutated(baseline(name, method)))
    code = await call(mesh, name, service, method, raw)
    assert code not in BAD, (method, raw[:64], code)
