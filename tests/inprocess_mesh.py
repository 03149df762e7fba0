"""Every service of the mesh as real aio gRPC servers on port 0 inside the test process.

Sharing one TracerProvider lets a test read one request's whole trace from an in-memory
exporter. The end-to-end test (`test_e2e.py`) runs the same mesh as separate processes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from costmesh.config import Env
from costmesh.rpc.server import RunningService, start_service


@dataclass
class InProcessMesh:
    services: dict[str, RunningService] = field(default_factory=dict)
    keys_file: Path | None = None
    http_url: str | None = None  # the gateway's OpenAI-compatible API (ends in /v1)
    scratch: Path | None = None  # a temporary folder of the mesh's own, removed by stop()
    secret_file: Path | None = None  # the mesh secret its services sign their calls with
    _keys: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.services["gateway"].address

    def api_key(self, tenant: str = "demo") -> str:
        """A gateway API key for `tenant`, minted into the mesh's key file on first use."""
        if tenant not in self._keys:
            from costmesh.gateway.auth import KeyStore

            self._keys[tenant], _ = KeyStore(self.keys_file).create(tenant, "tests")
        return self._keys[tenant]

    def service(self, name: str) -> RunningService:
        return self.services[name]

    async def stores_settled(self) -> None:
        """Wait until the gateway has sent every cache store it queued (stores happen after the
        answer): a test that asks the same question again then reads what the first answer stored."""
        gateway = next(item.servicer for item in self.services["gateway"].mounted.servicers
                       if hasattr(item.servicer, "_pipeline"))
        await gateway._pipeline.stores.drain()

    async def stop(self) -> None:
        for name in reversed(list(self.services)):
            await self.services[name].stop(0.5)
        self.services.clear()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


async def start_inprocess_mesh(
    redis_url: str, simulator_url: str, tracer_provider: TracerProvider, extra_env: dict[str, str] | None = None
) -> InProcessMesh:
    from costmesh.gateway.auth import KeyStore
    from costmesh.gateway.service import SPEC as GATEWAY
    from costmesh.rpc.mesh_secret import ensure_secret
    from costmesh.services.batches.service import SPEC as BATCHES
    from costmesh.services.cache.service import SPEC as CACHE
    from costmesh.services.classifier.service import SPEC as CLASSIFIER
    from costmesh.services.providers.service import SPEC as PROVIDERS
    from costmesh.services.router.service import SPEC as ROUTER
    from costmesh.tooling.launcher import free_port

    scratch = Path(tempfile.mkdtemp(prefix="costmesh-mesh-"))
    secret_file = ensure_secret(scratch / "mesh-secret")
    env = {
        "COSTMESH_MESH_SECRET_FILE": str(secret_file),
        "REDIS_URL": redis_url,
        "COSTMESH_SIMULATOR_URL": simulator_url,
        "COSTMESH_LOG_LEVEL": "warning",
        "COSTMESH_API_KEYS_FILE": str(scratch / "api-keys.json"),
        "COSTMESH_HTTP_PORT": str(free_port()),
        **(extra_env or {}),
    }
    mesh = InProcessMesh(keys_file=Path(env["COSTMESH_API_KEYS_FILE"]), scratch=scratch, secret_file=secret_file)
    KeyStore(mesh.keys_file).ensure_file()
    if env["COSTMESH_HTTP_PORT"] != "0":
        mesh.http_url = f"http://127.0.0.1:{env['COSTMESH_HTTP_PORT']}/v1"

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
        batches = await start(BATCHES, cache=cache.address, classifier=classifier.address, router=router.address,
                              providers=providers.address)
        await start(GATEWAY, cache=cache.address, classifier=classifier.address, router=router.address,
                    batches=batches.address)
    except BaseException:
        await mesh.stop()
        raise
    return mesh
