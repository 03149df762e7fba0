"""`python -m costmesh.services.simulator`: serve on $SIM_HOST:$SIM_PORT until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from costmesh.observability.logs import configure_logging
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.server import start_simulator


async def main() -> None:
    config = SimulatorConfig.from_env()
    log = configure_logging("simulator", config.log_level)
    sim = await start_simulator(config.port, config.host)
    log.info("listening", url=sim.url, books=len(sim.state.books), models=sorted(sim.state.catalog.models))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await sim.stop()
    log.info("stopped")


if __name__ == "__main__":
    asyncio.run(main())
