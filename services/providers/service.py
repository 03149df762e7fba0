"""The providers service: adapters for the configured upstreams, served as ProviderService."""

from __future__ import annotations

from costmesh.api.provider.v1 import provider_pb2, provider_pb2_grpc
from costmesh.catalog import load_catalog
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec
from costmesh.services.providers.batch_registry import BatchRegistry
from costmesh.services.providers.config import ProvidersConfig, build_adapters
from costmesh.services.providers.deprecations import deprecated, sdk_deprecations
from costmesh.services.providers.registry import AdapterRegistry
from costmesh.services.providers.servicer import ProviderServicer

FULL_NAME = provider_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    config = ProvidersConfig.from_env(runtime.env)
    catalog = load_catalog(runtime.settings.catalog)
    adapters = build_adapters(config, runtime.channel)
    registry = AdapterRegistry(catalog, adapters)
    batches = BatchRegistry.from_adapters(catalog, adapters)  # the batch APIs, over the adapters' SDK clients
    served = [m.id for m in registry.served_models()]
    runtime.log.info(
        "providers configured",
        providers=list(registry.providers),
        simulator=config.simulator_url,
        inference_replicas=list(config.inference_addrs),
        models=served,
        batch_apis=list(batches.providers),
    )
    for model, end_of_life in deprecated(served, sdk_deprecations()).items():
        runtime.log.warning("catalog model is deprecated by its provider: replace it in the catalog "
                            "(COSTMESH_CATALOG) before its end of life, after which its calls fail",
                            model=model, end_of_life=end_of_life)
    return Mounted(
        servicers=[
            Servicer(provider_pb2_grpc.add_ProviderServiceServicer_to_server, ProviderServicer(registry, batches),
                     FULL_NAME)
        ],
        close=registry.close,
    )


SPEC = ServiceSpec("providers", 50055, mount)
