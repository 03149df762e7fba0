"""Wires the gateway: channels to the cache, classifier and router, then the pipeline; BatchService forwarded
to the batches service; the tenant limits when the gateway has Redis (`REDIS_URL`, `request_limits`)."""

from __future__ import annotations

import contextlib

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.gateway.admin.api import AdminApi
from costmesh.gateway.auth import authenticator
from costmesh.gateway.batch_forward import batch_forwarder
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.feedback import feedback as feedback_reports
from costmesh.gateway.http.app import HttpApi
from costmesh.gateway.http.server import start_http
from costmesh.gateway.pipeline import GatewaySettings, Pipeline
from costmesh.gateway.request_limits import request_limits
from costmesh.gateway.routing_shadow import routing_checks
from costmesh.gateway.servicer import GatewayServicer
from costmesh.gateway.settings import GatewayConfig
from costmesh.gateway.shadow import shadow_checks
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.store_queue import StoreQueue
from costmesh.gateway.validation import Limits
from costmesh.observability.gateway import gateway_observability
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec


async def mount(runtime: Runtime) -> Mounted:
    env = runtime.env
    config = GatewayConfig.load(env)

    # Several connections per peer (COSTMESH_GATEWAY_CONNECTIONS, default 2): calls spread over
    # every worker process of a replica (COSTMESH_WORKERS), not only over replicas.
    def channels(field: str) -> list:
        address = config.require(field)
        return [runtime.channel(address, own_connections=True) for _ in range(config.gateway_connections)]

    clients = MeshClients(
        cache=channels("cache_addr"),
        classifier=channels("classifier_addr"),
        router=channels("router_addr"),
        cache_stores=channels("cache_addr"),
    )
    settings = GatewaySettings(
        cache_timeout_s=config.gateway_cache_timeout_s,
        classify_timeout_s=config.gateway_classify_timeout_s,
        limits=Limits.load(env),
    )
    cleanup = contextlib.AsyncExitStack()  # closed in reverse order when the service stops
    observability = gateway_observability(  # span attributes, metrics, cost records
        runtime, max_tenants=config.metrics_max_tenants, max_models=config.metrics_max_models,
        records_dir=config.records_dir, log_content=config.log_content)
    cleanup.callback(observability.close_now)
    shadows = shadow_checks(runtime, clients, observability.observers)  # background checks of semantic hits (#22)
    observability.observers.append(shadows)
    cleanup.push_async_callback(shadows.aclose)  # before the cost records close
    routing = await routing_checks(runtime, clients, observability.observers, cleanup)  # cheap answers (#22)
    if routing is not None:  # None: no tenant consented
        observability.observers.append(routing)
        cleanup.push_async_callback(routing.aclose)
    stores = StoreQueue(clients.store, max_pending=config.gateway_store_queue,
                        workers=config.gateway_store_workers, timeout_s=settings.cache_timeout_s)
    limits = await request_limits(runtime, cleanup)  # None without Redis (said once) or with COSTMESH_LIMITS=off
    reports = feedback_reports(runtime, clients, cleanup)  # bad answers reported by request id (#22)
    observability.observers.append(reports)
    cleanup.push_async_callback(reports.aclose)
    pipeline = Pipeline(clients, settings, GatewayStats(), observers=observability.observers, stores=stores,
                        limits=limits, routing=routing)
    cleanup.push_async_callback(pipeline.aclose)  # drains the queued stores after the servers stop taking calls
    auth = authenticator(runtime.settings.auth, config.api_keys_file)
    if config.http_port:  # 0 disables the OpenAI-compatible HTTP API (and the dashboard)
        admin = AdminApi(auth, records_dir=config.records_dir,
                         limiter=limits.limiter if limits is not None else None,
                         cache_stats=lambda: clients.cache_stats(settings.cache_timeout_s))
        api = HttpApi(pipeline, auth, load_catalog(), runtime.tracer_provider.get_tracer("costmesh.gateway.http"),
                      max_body_bytes=4 * settings.limits.max_prompt_bytes + (1 << 20), feedback=reports,
                      more_routes=admin.add_routes)
        http_host = config.http_host or runtime.settings.host
        tls = runtime.edge_tls.http_context(http_host) if runtime.edge_tls is not None else None  # HTTPS or checked
        bound, close_http = await start_http(
            api, http_host, config.http_port, reuse_port=runtime.settings.workers > 1, ssl_context=tls,
        )
        cleanup.push_async_callback(close_http)
        runtime.log.info("http listening", port=bound, api="openai-compatible /v1", dashboard="/dashboard",
                         tls=tls is not None)
    # BatchService: forwarded to the batches service
    batch = batch_forwarder(runtime, config.batches_addr, auth, settings.limits, limits)
    name = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
    gateway = GatewayServicer(pipeline, auth, reports)
    servicer = Servicer(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, gateway, name)
    return Mounted([servicer, batch], close=cleanup.aclose)


SPEC = ServiceSpec("gateway", 50051, mount, public=True)  # callers bring API keys, not service tokens
