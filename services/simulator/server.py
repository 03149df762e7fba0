"""Running the simulator in-process: `start_simulator` returns once it listens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from costmesh.services.simulator.app import create_app
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.state import STATE_KEY, SimState


@dataclass
class RunningSimulator:
    """A listening simulator: `url` for the SDKs, `state` for in-process inspection."""

    url: str
    port: int
    host: str
    app: web.Application
    _runner: web.AppRunner

    @property
    def state(self) -> SimState:
        return self.app[STATE_KEY]

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (up to shutdown_timeout_s), release the port."""
        await self._runner.cleanup()


async def start_simulator(port: int = 0, host: str = "127.0.0.1", **overrides: Any) -> RunningSimulator:
    """Start a simulator on `host:port` (0: a free port). `overrides` are `SimulatorConfig` fields
    applied over the environment's settings (`SimulatorConfig.from_env`)."""
    config = SimulatorConfig.from_env().with_overrides(host=host, port=port, **overrides)
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=config.shutdown_timeout_s, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return RunningSimulator(url=f"http://{url_host}:{bound}", port=bound, host=host, app=app, _runner=runner)
