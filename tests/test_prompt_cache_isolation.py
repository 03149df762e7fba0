"""Anthropic prompt-cache isolation per tenant (#19): tenant B sending the same long document as
tenant A never reads A's cache entry with isolation on (the default), and does with it off."""

from __future__ import annotations

import anthropic
import pytest

from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.domain import Message, Part, Role, Sampling
from costmesh.errors import ConfigError
from costmesh.output_spec import OutputSpec, Tool
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter, build_request
from costmesh.services.providers.anthropic_content import tenant_scoped
from costmesh.services.providers.batches import AnthropicBatches, BatchCall
from costmesh.services.providers.cache_breakpoints import AutoBreakpoints
from costmesh.services.providers.config import ProvidersConfig, build_adapters
from costmesh.services.simulator import start_simulator
from costmesh.tokens import count_tokens

CATALOG = load_catalog()
SONNET = CATALOG.model("claude-sonnet-4-5")


def document(tokens: int = 3000) -> str:
    words, out = 0, []
    while True:
        out.append(f"Clause {words} of the confidential supply contract sets a price.")
        words += 1
        if words % 50 == 0 and count_tokens(" ".join(out)) >= tokens:
            return " ".join(out)


DOC = document()


def rag(question: str) -> tuple[Message, ...]:
    return (Message.of(Role.SYSTEM, "Answer from the document."),
            Message(Role.USER, (Part(text=DOC), Part(text=question))))


@pytest.fixture
async def sim():
    simulator = await start_simulator(port=0, books=[])
    yield simulator
    await simulator.stop()


@pytest.mark.parametrize("isolation", [True, False])
async def test_another_tenant_reads_no_cache_entry_of_a_tenant_with_isolation_on(sim, isolation):
    # One providers service, one upstream key: every tenant's calls share one Anthropic organization.
    client = anthropic.AsyncAnthropic(api_key=f"org-key-{isolation}", base_url=sim.url, max_retries=0)
    adapter = AnthropicAdapter(client, AutoBreakpoints(), tenant_isolation=isolation)
    sampling = Sampling(max_tokens=32)
    first = await adapter.generate(SONNET, rag("What is the price in clause 3?"), sampling, "tenant-a")
    assert first.usage.cache_write_tokens > 3000 and first.usage.cache_read_tokens == 0
    again = await adapter.generate(SONNET, rag("And in clause 9?"), sampling, "tenant-a")
    assert again.usage.cache_read_tokens == first.usage.cache_write_tokens  # a tenant still reads its own
    other = await adapter.generate(SONNET, rag("What is the price in clause 5?"), sampling, "tenant-b")
    if isolation:
        assert other.usage.cache_read_tokens == 0  # B learns nothing of what A sent
        assert abs(other.usage.cache_write_tokens - first.usage.cache_write_tokens) <= 8  # B pays its own write
        # (the digests of the scope blocks differ by a token or two)
    else:
        assert other.usage.cache_read_tokens == first.usage.cache_write_tokens  # the leak isolation closes
    await adapter.close()


def test_the_scope_block_comes_first_and_differs_by_tenant():
    tools = OutputSpec(tools=(Tool("lookup", "Find a clause.", {"type": "object"}, cache_breakpoint=True),))
    a = build_request(SONNET, rag("q"), Sampling(), AutoBreakpoints(), "tenant-a", tools, tenant_isolation=True)
    b = build_request(SONNET, rag("q"), Sampling(), AutoBreakpoints(), "tenant-b", tools, tenant_isolation=True)
    assert a["system"][0]["text"] != b["system"][0]["text"]
    assert a["system"][0]["text"].startswith("[cache scope ") and "tenant-a" not in a["system"][0]["text"]
    assert a["system"][1]["text"] == "Answer from the document."  # the client's system prompt follows
    assert a["system"][1:] == b["system"][1:] and a["messages"] == b["messages"]
    # A prefix of the tool definitions alone would come before the scope block: never marked.
    assert all("cache_control" not in tool for tool in a["tools"])
    shared = build_request(SONNET, rag("q"), Sampling(), AutoBreakpoints(), "tenant-a", tools)
    assert shared["tools"][0]["cache_control"] and shared["system"][0]["text"] == "Answer from the document."
    assert tenant_scoped(rag("q"), "tenant-a")[0].text == a["system"][0]["text"]


def test_batch_requests_carry_the_scope_block_with_their_breakpoints():
    batches = AnthropicBatches(None, CATALOG.batch_discount, AutoBreakpoints(), tenant_isolation=True)
    calls = [BatchCall(f"r{i}", SONNET, rag(f"question {i}"), Sampling(max_tokens=16), tenant)
             for i, tenant in enumerate(["tenant-a", "tenant-a", "tenant-b"])]
    params = [request["params"] for request in batches.payload(calls).body]
    assert params[0]["system"][0] == params[1]["system"][0] != params[2]["system"][0]
    for p in params:  # the document is still marked, now behind the tenant's scope block
        assert p["messages"][0]["content"][0]["cache_control"]["type"] == "ephemeral"


def test_isolation_is_on_unless_turned_off():
    env = {"COSTMESH_SIMULATOR_URL": "http://127.0.0.1:1"}
    assert ProvidersConfig.from_env(Env(env)).tenant_isolation
    off = ProvidersConfig.from_env(Env({**env, "COSTMESH_PROMPT_CACHE_ISOLATION": "off"}))
    assert not off.tenant_isolation
    with pytest.raises(ConfigError, match="COSTMESH_PROMPT_CACHE_ISOLATION"):
        ProvidersConfig.from_env(Env({**env, "COSTMESH_PROMPT_CACHE_ISOLATION": "maybe"}))
    adapters = build_adapters(ProvidersConfig.from_env(Env(env)), channel=lambda address: None)
    assert adapters["anthropic"].tenant_isolation
