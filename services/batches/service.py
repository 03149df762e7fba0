"""Wiring of the batches service: the Redis job store, the mesh's channels, the poller.

Env: REDIS_URL (required: the jobs' state), COSTMESH_CACHE_ADDR, COSTMESH_CLASSIFIER_ADDR,
COSTMESH_ROUTER_ADDR, COSTMESH_PROVIDERS_ADDR (required peers), COSTMESH_BATCH_POLL_S (30: how
often the providers are polled), COSTMESH_BATCH_CACHE_TIMEOUT_S (2), COSTMESH_BATCH_CLASSIFY_TIMEOUT_S
(1), COSTMESH_BATCH_PROVIDER_TIMEOUT_S (300: a submission uploads the whole batch),
COSTMESH_BATCH_RETENTION_S (7 days: how long an ended job is kept), COSTMESH_CATALOG.
"""

from __future__ import annotations

import asyncio
import contextlib

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.errors import ConfigError
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .clients import MeshClients, ProviderBatchClient
from .engine import BatchEngine, BatchSettings
from .jobs import JobStore
from .servicer import BatchServicer

FULL_NAME = gateway_pb2.DESCRIPTOR.services_by_name["BatchService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    env = runtime.env
    redis_url = env.str("REDIS_URL")
    clients = MeshClients(
        cache=runtime.channel(env.str("COSTMESH_CACHE_ADDR")),
        classifier=runtime.channel(env.str("COSTMESH_CLASSIFIER_ADDR")),
        router=runtime.channel(env.str("COSTMESH_ROUTER_ADDR")),
    )
    providers = ProviderBatchClient(runtime.channel(env.str("COSTMESH_PROVIDERS_ADDR")),
                                    timeout_s=env.float("COSTMESH_BATCH_PROVIDER_TIMEOUT_S", 300.0))
    settings = BatchSettings(
        poll_interval_s=env.float("COSTMESH_BATCH_POLL_S", 30.0),
        cache_timeout_s=env.float("COSTMESH_BATCH_CACHE_TIMEOUT_S", 2.0),
        classify_timeout_s=env.float("COSTMESH_BATCH_CLASSIFY_TIMEOUT_S", 1.0),
    )
    if settings.poll_interval_s <= 0:
        raise ConfigError("COSTMESH_BATCH_POLL_S must be positive")
    store = JobStore.from_url(redis_url, retention_s=env.int("COSTMESH_BATCH_RETENTION_S", 7 * 24 * 3600))
    engine = BatchEngine(store, clients, providers, load_catalog(env.optional("COSTMESH_CATALOG")), settings,
                         tracer=runtime.tracer_provider.get_tracer("costmesh.batches"))
    poller = asyncio.create_task(engine.run(), name="costmesh-batch-poller")
    runtime.log.info("batches ready", poll_interval_s=settings.poll_interval_s)

    async def close() -> None:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await store.close()

    servicer = Servicer(gateway_pb2_grpc.add_BatchServiceServicer_to_server, BatchServicer(engine), FULL_NAME)
    return Mounted([servicer], close=close)


SPEC = ServiceSpec("batches", 50057, mount)
