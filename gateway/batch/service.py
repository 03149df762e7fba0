"""Wires the BatchService into the gateway process: Redis job store, provider batch APIs, the poller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.catalog import Catalog, load_catalog
from costmesh.config import Env
from costmesh.errors import ConfigError, Unavailable
from costmesh.gateway.auth import Authenticator
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.validation import Limits
from costmesh.rpc.server import Runtime, Servicer
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.config import ProvidersConfig
from costmesh.services.providers.openai_adapter import OpenAIAdapter

from .engine import BatchEngine, BatchSettings
from .jobs import JobStore
from .provider_batches import AnthropicBatches, OpenAIBatches, ProviderBatchAPI
from .servicer import BatchServicer

FULL_NAME = gateway_pb2.DESCRIPTOR.services_by_name["BatchService"].full_name


@dataclass
class BatchMount:
    servicer: Servicer
    close: Callable[[], Awaitable[None]]


def batch_apis(env: Env, catalog: Catalog) -> tuple[dict[str, ProviderBatchAPI], list]:
    """The batch APIs of the configured providers (the same env as the providers service), and their SDK clients."""
    try:
        config = ProvidersConfig.from_env(env)
    except ConfigError:
        return {}, []
    apis: dict[str, ProviderBatchAPI] = {}
    clients = []
    if config.anthropic:
        adapter = AnthropicAdapter.connect(
            api_key=config.anthropic.api_key,
            base_url=config.anthropic.base_url,
            timeout_s=config.timeout_s,
            breakpoints=config.breakpoint_policy(),
        )
        apis["anthropic"] = AnthropicBatches(adapter.client, catalog.batch_discount, adapter.breakpoints)
        clients.append(adapter.client)
    if config.openai:
        adapter = OpenAIAdapter.connect(
            api_key=config.openai.api_key, base_url=config.openai.base_url, timeout_s=config.timeout_s
        )
        apis["openai"] = OpenAIBatches(adapter.client, catalog.batch_discount)
        clients.append(adapter.client)
    return apis, clients


class _NoRedis(gateway_pb2_grpc.BatchServiceServicer):
    """Batches need their state in Redis; without REDIS_URL every call says so."""

    async def _refuse(self, request, context):
        raise Unavailable("batches need Redis for their state: set REDIS_URL on the gateway")

    SubmitBatch = GetBatch = CancelBatch = _refuse


async def mount_batch(runtime: Runtime, clients: MeshClients, auth: Authenticator | None = None) -> BatchMount:
    env = runtime.env
    add = gateway_pb2_grpc.add_BatchServiceServicer_to_server
    redis_url = env.optional("REDIS_URL")
    if not redis_url:
        runtime.log.warning("batch service disabled: REDIS_URL is not set")

        async def nothing() -> None:
            return None

        return BatchMount(Servicer(add, _NoRedis(), FULL_NAME), nothing)
    catalog = load_catalog(env.optional("COSTMESH_CATALOG"))
    apis, sdk_clients = batch_apis(env, catalog)
    settings = BatchSettings(
        poll_interval_s=env.float("COSTMESH_BATCH_POLL_S", 30.0),
        cache_timeout_s=env.float("COSTMESH_GATEWAY_CACHE_TIMEOUT_S", 2.0),
        classify_timeout_s=env.float("COSTMESH_GATEWAY_CLASSIFY_TIMEOUT_S", 1.0),
        limits=Limits(max_prompt_bytes=env.int("COSTMESH_MAX_PROMPT_BYTES", 1_000_000)),
    )
    if settings.poll_interval_s <= 0:
        raise ConfigError("COSTMESH_BATCH_POLL_S must be positive")
    store = JobStore.from_url(redis_url)
    engine = BatchEngine(store, clients, catalog, apis, settings,
                         tracer=runtime.tracer_provider.get_tracer("costmesh.gateway.batch"))
    poller = asyncio.create_task(engine.run(), name="costmesh-batch-poller")
    runtime.log.info("batch service ready", providers=sorted(apis), poll_interval_s=settings.poll_interval_s)

    async def close() -> None:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await store.close()
        for client in sdk_clients:
            await client.close()

    return BatchMount(Servicer(add, BatchServicer(engine, auth), FULL_NAME), close)
