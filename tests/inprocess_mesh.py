"""Every service of the mesh as real aio gRPC servers on port 0 inside the test process.

Sharing one TracerProvider lets a test read one request's whole trace from an in-memory
exporter. The end-to-end test (`test_e2e.py`) runs the same mesh as separate processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.trace import TracerProvider

from costmesh.config import Env
from costmesh.rpc.server import RunningService, start_service


@dataclass
class InProcessMesh:
    services: dict[str, RunningService] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.services["gateway"].address

    def service(self, name: str) -> RunningService:
        return self.services[name]

    async def stop(self) -> None:
        for name in reversed(list(self.services)):
            await self.services[name].stop(0.5)
        self.services.clear()


async def start_inprocess_mesh(
    redis_url: str, simulator_url: str, tracer_provider: TracerProvider, extra_env: dict[str, str] | None = None
) -> InProcessMesh:
    from costmesh.gateway.service import SPEC as GATEWAY
    from costmesh.services.cache.service import SPEC as CACHE
    from costmesh.services.classifier.service import SPEC as CLASSIFIER
    from costmesh.services.providers.service import SPEC as PROVIDERS
    from costmesh.services.router.service import SPEC as ROUTER

    env = {
        "REDIS_URL": redis_url,
        "COSTMESH_SIMULATOR_URL": simulator_url,
        "COSTMESH_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    mesh = InProcessMesh()

    async def start(spec, **peers: str) -> RunningService:
        peer_env = {f"COSTMESH_{name.upper()}_ADDR": address for name, address in peers.items()}
        service = await start_service(spec, Env({**env, **peer_env}), tracer_provider=tracer_provider, port=0)
        mesh.services[spec.name] = service
        return service

    try:
        cache = await start(CACHE)
        classifier = await start(CLASSIFIER)
        providers = await start(PROVIDERS)
        router = await start(ROUTER, providers=providers.address)
        await start(GATEWAY, cache=cache.address, classifier=classifier.address, router=router.address)
    except BaseException:
        await mesh.stop()
        raise
    return mesh
