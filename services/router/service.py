"""Wiring of the router service.

Env: COSTMESH_PROVIDERS_ADDR (required), COSTMESH_ROUTER_MAX_RETRIES (2, after a 429),
COSTMESH_ROUTER_TRANSIENT_RETRIES (1, after a 5xx/unreachable), COSTMESH_ROUTER_BACKOFF_BASE_S
(0.2), COSTMESH_ROUTER_BACKOFF_MAX_S (5.0), COSTMESH_ROUTER_MAX_RATE_LIMITED (4: 429s one request may
meet before it answers RESOURCE_EXHAUSTED), COSTMESH_ROUTER_RATE_LIMIT_WAIT_S (4.0: its waits after
them, in all), COSTMESH_ROUTER_GATE ("learned": the
heuristics plus the router artifact's answer gate; "heuristic": the seed's alone),
COSTMESH_ROUTER_GATE_THRESHOLD (0.5, of the heuristics), COSTMESH_ROUTER_ARTIFACT (the trained
router, default the packaged one), COSTMESH_ROUTER_GATE_MAX_TIER ("simple": the highest tier whose
answers the learned gate judges), COSTMESH_CATALOG (the model catalog file).
"""

from __future__ import annotations

from pathlib import Path

from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import Tier, load_catalog
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .cascade import Cascade
from .gate_factory import build_gate
from .grpc_provider_client import GrpcProviderClient
from .retry import RetryPolicy
from .servicer import RouterServicer
from .stats import RouterStats

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
        max_rate_limited=env.int("COSTMESH_ROUTER_MAX_RATE_LIMITED", 4),
        rate_limit_wait_s=env.float("COSTMESH_ROUTER_RATE_LIMIT_WAIT_S", 4.0),
    )
    gate_name = env.optional("COSTMESH_ROUTER_GATE")
    if gate_name is None:  # the learned gate when an artifact is there to read
        artifact = env.optional("COSTMESH_ROUTER_ARTIFACT")
        gate_name = "learned" if Path(artifact or DEFAULT_ARTIFACT).exists() else "heuristic"
    gate = build_gate(
        gate_name,
        env.float("COSTMESH_ROUTER_GATE_THRESHOLD", 0.5),
        artifact_path=env.optional("COSTMESH_ROUTER_ARTIFACT"),
        max_tier=Tier.parse(env.str("COSTMESH_ROUTER_GATE_MAX_TIER", "simple")),
    )
    client = GrpcProviderClient(runtime.channel(providers_addr))
    cascade = Cascade(catalog, client, gate, retry=retry, stats=RouterStats(meter=runtime.meter),
                      tracer=runtime.tracer_provider.get_tracer("costmesh.router"))
    runtime.log.info("router ready", providers=providers_addr, catalog=catalog.source, gate=gate.name)
    servicer = RouterServicer(cascade)
    return Mounted([Servicer(router_pb2_grpc.add_RouterServiceServicer_to_server, servicer, FULL_NAME)])


SPEC = ServiceSpec("router", 50054, mount)
