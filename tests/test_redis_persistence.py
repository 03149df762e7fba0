"""Data that survives (#19): the embedded Redis keeps an AOF in its data directory, so a restart
(clean or kill -9) keeps the cache entries and a finished batch job; its memory cap evicts only
keys with a TTL (volatile-ttl), and the keys that must not be lost carry none, or a longer one."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import build_request
from costmesh.tooling.redis_embedded import EVICTION_POLICY, EmbeddedRedis

from inprocess_mesh import start_inprocess_mesh

TENANT = "durable"
RPC_TIMEOUT_S = 30


def test_config_and_a_kill_9_keeps_what_was_written(tmp_path):
    server = EmbeddedRedis(data_dir=tmp_path / "redis", maxmemory="64mb").start()
    try:
        client = redis.Redis.from_url(server.url)
        config = client.config_get("*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
        assert config["maxmemory-policy"] == EVICTION_POLICY == "volatile-ttl"
        assert int(config["maxmemory"]) == 64 * 1024 * 1024
        client.set("costmesh:batch:job:meta", "{}")
        client.set("cache-entry", "answer", ex=3600)
        client.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "t", "TEXT")
        client.hset("doc:1", "t", "hello")
        client.close()
        time.sleep(1.5)  # appendfsync everysec: on disk within a second
        port = server.port
        server._process.send_signal(signal.SIGKILL)
        server._process.wait()
        server.stop()
        assert (tmp_path / "redis").is_dir()  # a data directory is kept
        server.start()
        assert server.port == port
        client = redis.Redis.from_url(server.url)
        assert client.get("costmesh:batch:job:meta") == b"{}" and client.ttl("costmesh:batch:job:meta") == -1
        assert client.get("cache-entry") == b"answer" and 0 < client.ttl("cache-entry") <= 3600
        assert client.ft("idx").search("hello").total == 1  # the index is back
        client.close()
    finally:
        server.stop()


@pytest.fixture
async def durable_mesh(tmp_path):
    server = EmbeddedRedis(data_dir=tmp_path / "redis", maxmemory="256mb").start()
    simulator = await start_simulator(port=0, batch_latency_s=0.5)
    env = {"COSTMESH_BATCH_POLL_S": "0.1", "COSTMESH_HTTP_PORT": "0", "COSTMESH_CACHE_VERIFIER": "rules",
           "COSTMESH_GATEWAY_CACHE_TIMEOUT_S": "30", "COSTMESH_GATEWAY_CLASSIFY_TIMEOUT_S": "30",
           "COSTMESH_BATCH_CACHE_TIMEOUT_S": "30", "COSTMESH_BATCH_CLASSIFY_TIMEOUT_S": "30"}
    mesh = await asyncio.wait_for(start_inprocess_mesh(server.url, simulator.url, TracerProvider(), extra_env=env),
                                  180)
    try:
        yield mesh, server
    finally:
        await mesh.stop()
        await simulator.stop()
        server.stop()


def question(request_id: str, prompt: str) -> gw.CompleteRequest:
    request = build_request(prompt, tenant=TENANT, max_tokens=64)
    request.request_id = request_id
    return request


async def test_cache_entries_and_a_finished_batch_survive_a_redis_restart(durable_mesh):
    mesh, server = durable_mesh
    auth = (("authorization", f"Bearer {mesh.api_key(TENANT)}"),)
    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        complete = gateway_pb2_grpc.GatewayServiceStub(channel)
        first = await complete.Complete(question("q1", "What is the boiling point of water at sea level?"),
                                        metadata=auth, timeout=RPC_TIMEOUT_S)
        assert not first.cached
        await mesh.stores_settled()
        batches = gateway_pb2_grpc.BatchServiceStub(channel)
        submitted = (await batches.SubmitBatch(
            gw.SubmitBatchRequest(tenant_id=TENANT, requests=[question("b1", "Name two noble gases."),
                                                              question("b2", "What is a prime number?")]),
            metadata=auth, timeout=RPC_TIMEOUT_S)).batch
        deadline = time.monotonic() + 120
        while True:
            done = (await batches.GetBatch(gw.GetBatchRequest(batch_id=submitted.batch_id, include_results=True),
                                           metadata=auth, timeout=RPC_TIMEOUT_S)).batch
            if done.status == gw.BATCH_STATUS_ENDED:
                break
            assert time.monotonic() < deadline, "the batch never ended"
            await asyncio.sleep(0.2)
        assert done.counts.succeeded == 2

    # What carries a TTL: every cache entry; a finished batch's keys (its retention, 7 days); nothing else
    # of the batches' (the active set, a running job). Eviction (volatile-ttl) only picks keys with a TTL.
    client = redis.Redis.from_url(server.url)
    ttls = {key.decode(): client.ttl(key) for key in client.scan_iter(count=1000)}
    cache_keys = {k: t for k, t in ttls.items() if k.startswith("costmesh-cache")}
    assert cache_keys and all(0 < t <= 86_400 for t in cache_keys.values())
    batch_keys = {k: t for k, t in ttls.items() if k.startswith("costmesh:batch:")}
    assert {k: t for k, t in batch_keys.items() if submitted.batch_id in k}
    assert all(86_400 < t <= 7 * 86_400 for k, t in batch_keys.items() if submitted.batch_id in k)
    assert all(t == -1 for k, t in batch_keys.items() if submitted.batch_id not in k)  # e.g. the active set
    await asyncio.to_thread(time.sleep, 1.2)  # appendfsync everysec
    client.close()

    server.stop()
    server.start()  # same port, same data directory

    async with grpc.aio.insecure_channel(mesh.gateway) as channel:
        complete = gateway_pb2_grpc.GatewayServiceStub(channel)
        for attempt in range(20):  # the cache service's connections to Redis come back after its cool-down
            repeat = question(f"q2-{attempt}", "What is the boiling point of water at sea level?")
            again = await complete.Complete(repeat, metadata=auth, timeout=RPC_TIMEOUT_S)
            if again.cache_status != gw.CACHE_STATUS_UNAVAILABLE:
                break
            await asyncio.sleep(0.5)
        assert again.cache_status == gw.CACHE_STATUS_EXACT_HIT and again.text == first.text
        batches = gateway_pb2_grpc.BatchServiceStub(channel)
        kept = (await batches.GetBatch(gw.GetBatchRequest(batch_id=submitted.batch_id, include_results=True),
                                       metadata=auth, timeout=RPC_TIMEOUT_S)).batch
        assert kept.status == gw.BATCH_STATUS_ENDED and kept.counts.succeeded == 2
        assert sorted((r.request_id, r.response.text) for r in kept.results) == \
            sorted((r.request_id, r.response.text) for r in done.results)
