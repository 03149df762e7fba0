"""Wiring of the router service.

Env: COSTMESH_PROVIDERS_ADDR (required), COSTMESH_ROUTER_MAX_RETRIES (2, after a 429),
COSTMESH_ROUTER_TRANSIENT_RETRIES (1, after a 5xx/unreachable), COSTMESH_ROUTER_BACKOFF_BASE_S
(0.2), COSTMESH_ROUTER_BACKOFF_MAX_S (5.0), COSTMESH_ROUTER_GATE ("heuristic"),
COSTMESH_ROUTER_GATE_THRESHOLD (0.5), COSTMESH_CATALOG (the model catalog file).
"""

from __future__ import annotations

from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .cascade import Cascade
from .gate import build_gate
from .grpc_provider_client import GrpcProviderClient
from .retry import RetryPolicy
from .servicer import RouterServicer

FULL_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    env = runtime.env
    providers_addr = env.str("COSTMESH_PROVIDERS_ADDR")
    catalog = load_catalog(env.optional("COSTMESH_CATALOG"))
    retry = RetryPolicy(
        max_retries=env.int("COSTMESH_ROUTER_MAX_RETRIES", 2),
        transient_retries=env.int("COSTMESH_ROUTER_TRANSIENT_RETRIES", 1),
        base_delay_s=env.float("COSTMESH_ROUTER_BACKOFF_BASE_S", 0.2),
        max_delay_s=env.float("COSTMESH_ROUTER_BACKOFF_MAX_S", 5.0),
    )
    gate = build_gate(env.str("COSTMESH_ROUTER_GATE", "heuristic"), env.float("COSTMESH_ROUTER_GATE_THRESHOLD", 0.5))
    client = GrpcProviderClient(runtime.channel(providers_addr))
    cascade = Cascade(catalog, client, gate, retry=retry)
    runtime.log.info("router ready", providers=providers_addr, catalog=catalog.source, gate=gate.name)
    servicer = RouterServicer(cascade)
    return Mounted([Servicer(router_pb2_grpc.add_RouterServiceServicer_to_server, servicer, FULL_NAME)])


SPEC = ServiceSpec("router", 50054, mount)
