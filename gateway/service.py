"""Wires the gateway: channels to the cache, classifier and router, then the pipeline."""

from __future__ import annotations

from costmesh.api.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from costmesh.gateway.clients import MeshClients
from costmesh.gateway.pipeline import GatewaySettings, Pipeline
from costmesh.gateway.servicer import GatewayServicer
from costmesh.gateway.stats import GatewayStats
from costmesh.gateway.validation import Limits
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec


async def mount(runtime: Runtime) -> Mounted:
    env = runtime.env
    clients = MeshClients(
        cache=runtime.channel(env.str("COSTMESH_CACHE_ADDR")),
        classifier=runtime.channel(env.str("COSTMESH_CLASSIFIER_ADDR")),
        router=runtime.channel(env.str("COSTMESH_ROUTER_ADDR")),
    )
    settings = GatewaySettings(
        cache_timeout_s=env.float("COSTMESH_GATEWAY_CACHE_TIMEOUT_S", 2.0),
        classify_timeout_s=env.float("COSTMESH_GATEWAY_CLASSIFY_TIMEOUT_S", 1.0),
        limits=Limits(max_prompt_bytes=env.int("COSTMESH_MAX_PROMPT_BYTES", 1_000_000)),
    )
    pipeline = Pipeline(clients, settings, GatewayStats())
    name = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
    return Mounted([Servicer(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, GatewayServicer(pipeline), name)])


SPEC = ServiceSpec("gateway", 50051, mount)
