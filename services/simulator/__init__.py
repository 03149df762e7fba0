"""Provider simulator: the Anthropic Messages and OpenAI Chat Completions HTTP APIs, closely enough
that the official SDKs work against it unchanged (token counts, prompt caching, usage, latency,
faults, book replay), tool calls, tool results, JSON output and images included.

The model behind both APIs is deterministic (`model_reply`): offered tools, it calls the one
whose name and description best match the prompt, with arguments built from the tool's schema
and the prompt (`tool_calls`, `schema_values`); after tool results it answers in text that
quotes them; asked for JSON it fills the schema (`json_output`); an Anthropic conversation
ending with an assistant turn is continued from it (a "{" prefill as JSON mode's object, without
the brace again). Models replaying the books' weak side get some of these wrong, per prompt
(`mistakes`); strict tools and schemas never.

    sim = await start_simulator(latency_ms=50)
    anthropic.AsyncAnthropic(base_url=sim.url, api_key="x")
    openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="x")
    await sim.stop()
"""

from costmesh.services.simulator.app import create_app
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.server import RunningSimulator, start_simulator

__all__ = ["RunningSimulator", "SimulatorConfig", "create_app", "start_simulator"]
