"""Wiring of the batches service: the Redis job store, the mesh's channels, the poller (its
settings: `settings.BatchesSettings`; the catalog: COSTMESH_CATALOG)."""

from __future__ import annotations

import asyncio
import contextlib

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .clients import MeshClients, ProviderBatchClient
from .engine import BatchEngine
from .jobs import JobStore
from .servicer import BatchServicer
from .settings import BatchesSettings

FULL_NAME = gateway_pb2.DESCRIPTOR.services_by_name["BatchService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    config = BatchesSettings.load(runtime.env)
    redis_url = config.require("redis_url")
    clients = MeshClients(
        cache=runtime.channel(config.require("cache_addr")),
        classifier=runtime.channel(config.require("classifier_addr")),
        router=runtime.channel(config.require("router_addr")),
    )
    providers = ProviderBatchClient(runtime.channel(config.require("providers_addr")),
                                    timeout_s=config.batch_provider_timeout_s)
    settings = config.engine_settings()
    store = JobStore.from_url(redis_url, retention_s=config.batch_retention_s)
    engine = BatchEngine(store, clients, providers, load_catalog(runtime.settings.catalog), settings,
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
