"""Wiring of the router service (its settings: `settings.RouterSettings`; the catalog: COSTMESH_CATALOG)."""

from __future__ import annotations

from pathlib import Path

from costmesh.api.router.v1 import router_pb2, router_pb2_grpc
from costmesh.catalog import Tier, load_catalog
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .cascade import Cascade
from .gate_factory import build_gate
from .grpc_provider_client import GrpcProviderClient
from .servicer import RouterServicer
from .settings import RouterSettings
from .stats import RouterStats

FULL_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    settings = RouterSettings.load(runtime.env)
    providers_addr = settings.require("providers_addr")
    catalog = load_catalog(runtime.settings.catalog)
    gate_name = settings.gate
    if gate_name is None:  # the learned gate when an artifact is there to read
        gate_name = "learned" if Path(settings.artifact or DEFAULT_ARTIFACT).exists() else "heuristic"
    gate = build_gate(gate_name, settings.gate_threshold, artifact_path=settings.artifact,
                      max_tier=Tier.parse(settings.gate_max_tier))
    client = GrpcProviderClient(runtime.channel(providers_addr))
    cascade = Cascade(catalog, client, gate, retry=settings.retry_policy(), stats=RouterStats(meter=runtime.meter),
                      tracer=runtime.tracer_provider.get_tracer("costmesh.router"))
    runtime.log.info("router ready", providers=providers_addr, catalog=catalog.source, gate=gate.name)
    servicer = RouterServicer(cascade)
    return Mounted([Servicer(router_pb2_grpc.add_RouterServiceServicer_to_server, servicer, FULL_NAME)])


SPEC = ServiceSpec("router", 50054, mount)
