"""Wires the gateway: channels to the cache, classifier and router, then the pipeline; BatchService forwarded
to the batches service; the tenant limits when the gateway has Redis (`REDIS_URL`, `request_limits`)."""

from __future__ import annotations

import contextlib

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.gateway.admin.api import AdminApi
from costmesh.gateway.auth import authenticator_from_env
from costmesh.gateway.batch_forward import batch_forwarder
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.feedback import feedback as feedback_reports
from costmesh.gateway.http.app import HttpApi
from costmesh.gateway.http.server import start_http
from costmesh.gateway.pipeline import GatewaySettings, Pipeline
from costmesh.gateway.request_limits import request_limits
from costmesh.gateway.routing_shadow import routing_checks
from costmesh.gateway.servicer import GatewayServicer
from costmesh.gateway.shadow import shadow_checks
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.store_queue import StoreQueue
from costmesh.gateway.validation import Limits
from costmesh.observability.gateway import gateway_observability
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec


async def mount(runtime: Runtime) -> Mounted:
    env = runtime.env
    # Several connections per peer (COSTMESH_GATEWAY_CONNECTIONS, default 2): calls spread over
    # every worker process of a replica (COSTMESH_WORKERS), not only over replicas.
    connections = env.int("COSTMESH_GATEWAY_CONNECTIONS", 2)

    def channels(variable: str) -> list:
        return [runtime.channel(env.str(variable), own_connections=True) for _ in range(max(1, connections))]

    clients = MeshClients(
        cache=channels("COSTMESH_CACHE_ADDR"),
        classifier=channels("COSTMESH_CLASSIFIER_ADDR"),
        router=channels("COSTMESH_ROUTER_ADDR"),
        cache_stores=channels("COSTMESH_CACHE_ADDR"),
    )
    settings = GatewaySettings(
        cache_timeout_s=env.float("COSTMESH_GATEWAY_CACHE_TIMEOUT_S", 2.0),
        classify_timeout_s=env.float("COSTMESH_GATEWAY_CLASSIFY_TIMEOUT_S", 1.0),
        limits=Limits.from_env(env),
    )
    cleanup = contextlib.AsyncExitStack()  # closed in reverse order when the service stops
    observability = gateway_observability(runtime)  # span attributes, metrics, cost records
    cleanup.callback(observability.close_now)
    shadows = shadow_checks(runtime, clients, observability.observers)  # background checks of semantic hits (#22)
    observability.observers.append(shadows)
    cleanup.push_async_callback(shadows.aclose)  # before the cost records close
    routing = await routing_checks(runtime, clients, observability.observers, cleanup)  # cheap answers (#22)
    if routing is not None:  # None: no tenant consented
        observability.observers.append(routing)
        cleanup.push_async_callback(routing.aclose)
    stores = StoreQueue(clients.store, max_pending=env.int("COSTMESH_GATEWAY_STORE_QUEUE", 1024),
                        workers=env.int("COSTMESH_GATEWAY_STORE_WORKERS", 4), timeout_s=settings.cache_timeout_s)
    limits = await request_limits(runtime, cleanup)  # None without Redis (said once) or with COSTMESH_LIMITS=off
    reports = feedback_reports(runtime, clients, cleanup)  # bad answers reported by request id (#22)
    observability.observers.append(reports)
    cleanup.push_async_callback(reports.aclose)
    pipeline = Pipeline(clients, settings, GatewayStats(), observers=observability.observers, stores=stores,
                        limits=limits, routing=routing)
    cleanup.push_async_callback(pipeline.aclose)  # drains the queued stores after the servers stop taking calls
    auth = authenticator_from_env(env)
    http_port = env.int("COSTMESH_HTTP_PORT", 8080)
    if http_port:  # 0 disables the OpenAI-compatible HTTP API (and the dashboard)
        admin = AdminApi(auth, records_dir=env.optional("COSTMESH_RECORDS_DIR"),
                         limiter=limits.limiter if limits is not None else None,
                         cache_stats=lambda: clients.cache_stats(settings.cache_timeout_s))
        api = HttpApi(pipeline, auth, load_catalog(), runtime.tracer_provider.get_tracer("costmesh.gateway.http"),
                      max_body_bytes=4 * settings.limits.max_prompt_bytes + (1 << 20), feedback=reports,
                      more_routes=admin.add_routes)
        http_host = env.str("COSTMESH_HTTP_HOST", env.str("COSTMESH_HOST", "127.0.0.1"))
        tls = runtime.edge_tls.http_context(http_host) if runtime.edge_tls is not None else None  # HTTPS or checked
        bound, close_http = await start_http(
            api, http_host, http_port, reuse_port=env.int("COSTMESH_WORKERS", 1) > 1, ssl_context=tls,
        )
        cleanup.push_async_callback(close_http)
        runtime.log.info("http listening", port=bound, api="openai-compatible /v1", dashboard="/dashboard",
                         tls=tls is not None)
    batch = batch_forwarder(runtime, auth, settings.limits, limits)  # BatchService: forwarded to the batches service
    name = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
    gateway = GatewayServicer(pipeline, auth, reports)
    servicer = Servicer(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, gateway, name)
    return Mounted([servicer, batch], close=cleanup.aclose)


SPEC = ServiceSpec("gateway", 50051, mount, public=True)  # callers bring API keys, not service tokens
