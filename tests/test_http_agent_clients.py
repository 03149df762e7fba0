"""Agent frameworks nobody here wrote, pointed at `/v1/chat/completions` by their base URL only,
against the in-process mesh, real Redis and the simulator: the OpenAI Agents SDK running an
agent with two function tools (the loop completes, and every model call of it is billed), and
LangChain's `ChatOpenAI` (`bind_tools`, a tool-result round trip, `with_structured_output`
with a pydantic schema, by JSON schema and by function calling)."""

import httpx
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, Field

from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh


class Capital(BaseModel):
    """A country's capital city."""

    country: str = Field(description="The country")
    capital: str = Field(description="Its capital city")


class GetWeather(BaseModel):
    """Get the current weather forecast for a city."""

    city: str = Field(description="The city")


@function_tool
def get_weather(city: str) -> str:
    """Get the current weather forecast for a city.

    Args:
        city: The city.
    """
    return f"{city}: 18 degrees and sunny"


@function_tool
def get_stock_price(ticker: str) -> str:
    """Look up the latest stock price of a company ticker.

    Args:
        ticker: The ticker symbol.
    """
    return f"{ticker}: 123.45 USD"


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider())
    yield mesh
    await mesh.stop()


async def test_an_openai_agents_sdk_agent_runs_its_tool_loop_and_every_turn_is_billed(mesh):
    bills: list[float] = []

    async def bill(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            assert response.status_code == 200, await response.aread()
            bills.append(float(response.headers["x-costmesh-cost-usd"]))

    client = openai.AsyncOpenAI(base_url=mesh.http_url, api_key=mesh.api_key("agents"), max_retries=0,
                                http_client=httpx.AsyncClient(event_hooks={"response": [bill]}))
    agent = Agent(name="assistant", instructions="Answer with the tools' help.",
                  tools=[get_weather, get_stock_price],
                  model=OpenAIChatCompletionsModel(model="auto", openai_client=client))
    result = await Runner.run(agent, "What is the weather forecast in Paris today?",
                              run_config=RunConfig(tracing_disabled=True))
    calls = [item for item in result.new_items if item.type == "tool_call_item"]
    outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert calls and calls[0].raw_item.name == "get_weather"
    assert outputs and "18 degrees" in outputs[0].output
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert len(bills) == len(result.raw_responses) >= 2 and all(cost > 0 for cost in bills)


def chat(mesh, tenant: str, model: str = "auto") -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=mesh.http_url, api_key=mesh.api_key(tenant), max_retries=0,
                      max_tokens=300)


async def test_langchain_bind_tools_and_a_tool_result_round_trip(mesh):
    llm = chat(mesh, "langchain-tools")
    bound = llm.bind_tools([GetWeather])
    question = HumanMessage("What is the weather forecast in Oslo right now?")
    called = await bound.ainvoke([question])
    assert called.tool_calls and called.tool_calls[0]["name"] == "GetWeather"
    assert called.tool_calls[0]["args"]["city"]
    assert called.response_metadata["finish_reason"] == "tool_calls"
    result = ToolMessage("Oslo: 4 degrees and snowing", tool_call_id=called.tool_calls[0]["id"])
    final = await bound.ainvoke([question, called, result])
    assert final.content and not final.tool_calls


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
async def test_langchain_with_structured_output_of_a_pydantic_model(mesh, method):
    structured = chat(mesh, f"langchain-structured-{method}").with_structured_output(Capital, method=method)
    answer = await structured.ainvoke("Give the capital of France.")
    assert isinstance(answer, Capital) and answer.country and answer.capital
