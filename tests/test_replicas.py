"""Replicas share the load: peer channels round-robin over every replica, servers age connections out.

Two real cache replicas (on the embedded Redis) and two real classifier replicas, each an aio
server on its own port with its own tracer: the calls a replica served are counted on the
server side, from its own server spans. A `dns:///`
target cannot name two ports of localhost, so the channels get gRPC's `ipv4:` list, which the
same round_robin policy spreads.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import uuid
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from costmesh.api.cache.v1 import cache_pb2, cache_pb2_grpc
from costmesh.api.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from costmesh.api.common.v1 import common_pb2
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.config import Env
from costmesh.embeddings import Embedder
from costmesh.rpc import server as bootstrap
from costmesh.rpc.channels import peer_channel, peer_options
from costmesh.rpc.server import RunningService, ServiceSpec, server_options, start_service
from costmesh.server_settings import ServerSettings
from costmesh.services.cache.service import make_mount
from costmesh.services.classifier.service import SPEC as CLASSIFIER

CALLS = 200
LOOKUP = "/costmesh.cache.v1.CacheService/Lookup"
STORE = "/costmesh.cache.v1.CacheService/Store"
CLASSIFY = "/costmesh.classifier.v1.ClassifierService/Classify"


class Replica:
    """A running service with a tracer of its own: its server spans are the calls it served."""

    def __init__(self, service: RunningService, exporter: InMemorySpanExporter):
        self.service = service
        self.exporter = exporter

    @classmethod
    async def start(cls, spec: ServiceSpec, env: dict[str, str]) -> "Replica":
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        service = await start_service(spec, Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_LOG_LEVEL": "warning", **env}),
                                      tracer_provider=provider, port=0)
        return cls(service, exporter)

    def served(self, methods: str | tuple[str, ...]) -> int:
        methods = (methods,) if isinstance(methods, str) else methods
        return sum(1 for s in self.exporter.get_finished_spans() if s.kind == SpanKind.SERVER and s.name in methods)

    def peers(self) -> set[str]:
        """The client ends (ip:port) of the connections this replica served calls on."""
        found = set()
        for span in self.exporter.get_finished_spans():
            attributes = span.attributes or {}
            if span.kind == SpanKind.SERVER and "net.peer.port" in attributes:
                found.add(f"{attributes.get('net.peer.ip')}:{attributes['net.peer.port']}")
        return found


def ipv4_target(replicas: list[Replica]) -> str:
    return "ipv4:" + ",".join(r.service.address for r in replicas)


WORDS = ("river apple engine violin castle orbit pepper glacier compiler lantern meadow falcon ledger canyon "
         "quartz harbor tulip rocket saddle thunder marble cactus piano vortex walnut beacon fossil jungle kettle "
         "nebula oyster prism quiver rhubarb satellite tornado umbrella velvet whisker yacht zephyr").split()


_USED_WORD_SETS: set[frozenset[str]] = set()


def prompt(i: int) -> str:
    """A question unlike the others (random words), so that the cache misses it. Never the words
    of an earlier one in another order: those embed alike (cosine 0.98, over the caches' 0.97),
    and a few percent of runs drew such a pair among their ~250 prompts and got a semantic hit."""
    rng = random.Random(f"{uuid.uuid4()}{i}")
    while True:
        words = rng.sample(WORDS, 5)
        if frozenset(words) not in _USED_WORD_SETS:
            _USED_WORD_SETS.add(frozenset(words))
            return f"Tell me about the {' and the '.join(words)}."


def message(text: str) -> common_pb2.Message:
    return common_pb2.Message(role=common_pb2.ROLE_USER, content=[common_pb2.ContentPart(text=text)])


def assert_shared(replicas: list[Replica], method: str, before: list[int], calls: int) -> None:
    counts = [r.served(method) - b for r, b in zip(replicas, before)]
    assert sum(counts) == calls, counts
    for count in counts:
        assert 0.4 * calls <= count <= 0.6 * calls, (method, counts)


@pytest.fixture(scope="module")
async def embedder():
    model = await asyncio.to_thread(Embedder)
    yield model
    await model.aclose()


@pytest.fixture(scope="module")
async def caches(redis_url, embedder):
    spec = ServiceSpec("cache", 0, make_mount(embedder))  # the replicas share one model in this process
    # A plain cosine check (no verifier model) and prompts far apart: quick misses, whatever the load.
    env = {"REDIS_URL": redis_url, "COSTMESH_CACHE_VERIFIER": "cosine", "COSTMESH_CACHE_MIN_SIMILARITY": "0.97"}
    replicas = [await Replica.start(spec, env) for _ in range(2)]
    yield replicas
    for replica in replicas:
        await replica.service.stop(0.5)


@pytest.fixture(scope="module")
async def classifiers():
    replicas = [await Replica.start(CLASSIFIER, {"COSTMESH_CLASSIFIER_STRATEGY": "rules"}) for _ in range(2)]
    yield replicas
    for replica in replicas:
        await replica.service.stop(0.5)


async def warm_up(call, replicas_by_method: dict[str | tuple[str, ...], list[Replica]]) -> dict[str, list[int]]:
    """Calls until every replica has served one more of its method: round_robin picks among the
    replicas it is connected to, so the first calls may all go to the first to connect. Returns
    the counts to measure from."""
    start = {m: [r.served(m) for r in rs] for m, rs in replicas_by_method.items()}

    def done() -> bool:
        return all(r.served(m) > b for m, rs in replicas_by_method.items() for r, b in zip(rs, start[m]))

    for i in range(200):
        if done():
            break
        await call(-1 - i)  # a call of its own (a request the cache has not seen)
        await asyncio.sleep(0.01)
    assert done(), {m: [r.served(m) for r in rs] for m, rs in replicas_by_method.items()}
    return {m: [r.served(m) for r in rs] for m, rs in replicas_by_method.items()}


# ---------------------------------------------------------------------------------------------
# the channel and server options


def test_peer_channels_use_round_robin():
    options = dict(peer_options())
    config = json.loads(options["grpc.service_config"])
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert options["grpc.max_receive_message_length"] == bootstrap.MAX_MESSAGE_BYTES
    retry = {"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.1s", "maxBackoff": "1s",
                                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}
    config = json.loads(dict(peer_options([retry]))["grpc.service_config"])
    assert config["methodConfig"] == [retry] and config["loadBalancingConfig"] == [{"round_robin": {}}]


def test_server_options_carry_a_max_connection_age_from_env():
    defaults = dict(server_options(ServerSettings.load({})))
    assert defaults["grpc.max_connection_age_ms"] == 300_000
    assert defaults["grpc.max_connection_age_grace_ms"] == 300_000
    assert defaults["grpc.max_send_message_length"] == bootstrap.MAX_MESSAGE_BYTES
    custom = dict(server_options(ServerSettings.load({"COSTMESH_MAX_CONNECTION_AGE_S": "60",
                                      "COSTMESH_MAX_CONNECTION_AGE_GRACE_S": "5"})))
    assert custom["grpc.max_connection_age_ms"] == 60_000
    assert custom["grpc.max_connection_age_grace_ms"] == 5_000
    off = dict(server_options(ServerSettings.load({"COSTMESH_MAX_CONNECTION_AGE_S": "0"})))
    assert "grpc.max_connection_age_ms" not in off and "grpc.max_connection_age_grace_ms" not in off


async def test_the_bootstrap_starts_servers_with_the_max_connection_age(monkeypatch):
    seen: list[dict] = []
    real = grpc.aio.server

    def server(*args, **kwargs):
        seen.append(dict(kwargs.get("options") or ()))
        return real(*args, **kwargs)

    monkeypatch.setattr(grpc.aio, "server", server)
    env = {"COSTMESH_CLASSIFIER_STRATEGY": "rules", "COSTMESH_MAX_CONNECTION_AGE_S": "120"}
    replica = await Replica.start(CLASSIFIER, env)
    await replica.service.stop(0)
    assert seen and seen[-1]["grpc.max_connection_age_ms"] == 120_000
    assert seen[-1]["grpc.max_connection_age_grace_ms"] == 300_000


async def test_an_aged_connection_is_replaced_and_calls_go_on():
    """With a short maximum age the server closes the connection (GOAWAY); the channel opens a
    new one and no call fails. Bounded by a number of calls, not by time."""
    env = {"COSTMESH_CLASSIFIER_STRATEGY": "rules", "COSTMESH_MAX_CONNECTION_AGE_S": "0.2",
           "COSTMESH_MAX_CONNECTION_AGE_GRACE_S": "5"}
    replica = await Replica.start(CLASSIFIER, env)
    try:
        async with peer_channel(replica.service.address) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            for _ in range(400):
                await stub.Classify(classifier_pb2.ClassifyRequest(messages=[message("Hello!")]), timeout=5)
                if len(replica.peers()) >= 2:
                    break
                await asyncio.sleep(0.05)
        assert len(replica.peers()) >= 2, replica.peers()
    finally:
        await replica.service.stop(0)


# ---------------------------------------------------------------------------------------------
# the load, shared


async def test_calls_to_two_cache_replicas_are_shared(caches):
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    scope = cache_pb2.Scope(tenant_id=tenant)
    async with peer_channel(ipv4_target(caches)) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)

        async def lookup(i: int = 0):
            request = cache_pb2.LookupRequest(messages=[message(f"question number {i} about replicas")], scope=scope)
            return await stub.Lookup(request, timeout=10)

        before = (await warm_up(lookup, {LOOKUP: caches}))[LOOKUP]
        for i in range(CALLS):
            await lookup(i)
    assert_shared(caches, LOOKUP, before, CALLS)


async def test_calls_to_two_classifier_replicas_are_shared(classifiers):
    async with peer_channel(ipv4_target(classifiers)) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        async def classify(i: int = 0):
            request = classifier_pb2.ClassifyRequest(messages=[message(f"Explain replica number {i}")])
            return await stub.Classify(request, timeout=5)

        before = (await warm_up(classify, {CLASSIFY: classifiers}))[CLASSIFY]
        await asyncio.gather(*(classify(i) for i in range(CALLS)))  # concurrent: still one pick per call
    assert_shared(classifiers, CLASSIFY, before, CALLS)


async def test_the_gateway_spreads_its_calls_over_the_replicas(redis_url, caches, classifiers):
    """The mesh path: a gateway whose COSTMESH_CACHE_ADDR / COSTMESH_CLASSIFIER_ADDR list both
    replicas; every request a miss, so each makes one Lookup and one Classify."""
    from costmesh.gateway.auth import KeyStore
    from costmesh.gateway.service import SPEC as GATEWAY
    from costmesh.services.providers.service import SPEC as PROVIDERS
    from costmesh.services.router.service import SPEC as ROUTER
    from costmesh.services.simulator import start_simulator
    from costmesh.tooling.mesh_client import GatewayClient, build_request

    simulator = await start_simulator(port=0)
    scratch = Path(tempfile.mkdtemp(prefix="costmesh-replicas-"))
    keys = scratch / "api-keys.json"
    KeyStore(keys).ensure_file()
    api_key, _ = KeyStore(keys).create("replicas", "tests")
    env = {"COSTMESH_MESH_AUTH": "off",
           "REDIS_URL": redis_url, "COSTMESH_SIMULATOR_URL": simulator.url, "COSTMESH_LOG_LEVEL": "warning",
           "COSTMESH_API_KEYS_FILE": str(keys), "COSTMESH_HTTP_PORT": "0"}
    started: list[RunningService] = []
    try:
        started.append(await start_service(PROVIDERS, Env(env), port=0))
        started.append(await start_service(ROUTER, Env({**env, "COSTMESH_PROVIDERS_ADDR": started[0].address}),
                                           port=0))
        gateway = await start_service(GATEWAY, Env({
            **env,
            "COSTMESH_CACHE_ADDR": ipv4_target(caches),
            "COSTMESH_CLASSIFIER_ADDR": ipv4_target(classifiers),
            "COSTMESH_ROUTER_ADDR": started[1].address,
        }), port=0)
        started.append(gateway)
        async with GatewayClient(gateway.address, api_key=api_key) as client:

            async def complete(i: int = 0):  # a request of its own every time: a miss, so classified and stored
                return await client.complete(build_request(prompt(i)))

            await warm_up(complete, {(LOOKUP, STORE): caches, CLASSIFY: classifiers})
            before = {LOOKUP: [r.served(LOOKUP) for r in caches], CLASSIFY: [r.served(CLASSIFY) for r in classifiers]}
            stores = [r.served(STORE) for r in caches]
            for start in range(0, CALLS, 8):
                answers = await asyncio.gather(*(complete(i) for i in range(start, start + 8)))
                # (cache status, cached, text length, model) of each, should one ever not be a fresh miss
                assert all(a.text and not a.cached for a in answers), [
                    (gw.CacheStatus.Name(a.cache_status), a.cached, len(a.text), a.model) for a in answers]
            for _ in range(600):  # the store follows the answer (up to 30 s on a loaded machine)
                if sum(r.served(STORE) - b for r, b in zip(caches, stores)) >= CALLS:
                    break
                await asyncio.sleep(0.05)
        assert_shared(classifiers, CLASSIFY, before[CLASSIFY], CALLS)
        # Every call to the cache counts: a lookup and a store per request.
        lookups = [r.served(LOOKUP) - b for r, b in zip(caches, before[LOOKUP])]
        stored = [r.served(STORE) - b for r, b in zip(caches, stores)]
        assert sum(lookups) == CALLS and sum(stored) >= CALLS, (lookups, stored)
        calls = [a + b for a, b in zip(lookups, stored)]
        assert all(0.4 * sum(calls) <= c <= 0.6 * sum(calls) for c in calls), (lookups, stored)
    finally:
        for service in reversed(started):
            await service.stop(0.5)
        await simulator.stop()
