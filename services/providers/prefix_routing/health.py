"""Health checks of the inference replicas with the standard gRPC health service.

Every `interval_s` each replica's `grpc.health.v1.Health/Check` for the inference service is
called; SERVING brings it (back) into rotation, anything else (NOT_SERVING while the engine loads,
a refused connection, a timeout) takes it out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.api.inference.v1 import inference_pb2
from costmesh.services.providers.replica_picker import ReplicaHealth

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


class HealthMonitor:
    def __init__(self, health: ReplicaHealth, channel: Callable[[str], grpc.aio.Channel], interval_s: float = 2.0):
        self._health = health
        self._channel = channel
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None

    async def check(self, replica: str) -> bool:
        """One health check of `replica`; updates its state and returns whether it is up."""
        stub = health_pb2_grpc.HealthStub(self._channel(replica))
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=INFERENCE_SERVICE), timeout=max(self.interval_s, 0.5)
            )
            up = response.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            up = False
        self._health.set_up(replica, up)
        return up

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(r) for r in self._health.replicas))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="inference-replica-health")

    async def _loop(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
