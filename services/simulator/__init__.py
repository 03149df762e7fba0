"""Provider simulator: the Anthropic Messages and OpenAI Chat Completions HTTP APIs, closely enough
that the official SDKs work against it unchanged (token counts, prompt caching, usage, latency,
faults, book replay).

    sim = await start_simulator(latency_ms=50)
    anthropic.AsyncAnthropic(base_url=sim.url, api_key="x")
    openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="x")
    await sim.stop()
"""

from costmesh.services.simulator.app import create_app
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.server import RunningSimulator, start_simulator

__all__ = ["RunningSimulator", "SimulatorConfig", "create_app", "start_simulator"]
