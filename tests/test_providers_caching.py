"""Automatic prompt caching: breakpoint placement, TTL by reuse, OpenAI prompt_cache_key, and the
simulator billing a repeated RAG prompt exactly as the accounting says."""

from __future__ import annotations

import anthropic
import openai
import pytest

from costmesh.catalog import load_catalog
from costmesh.domain import Message, Part, Role, Sampling
from costmesh.pricing import cost_of
from costmesh.services.providers import anthropic_adapter, openai_adapter
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.cache_breakpoints import (
    MAX_BREAKPOINTS,
    TTL_1H,
    TTL_5M,
    AutoBreakpoints,
    Reuse,
    ReuseTracker,
    choose_ttl,
    layout,
)
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.simulator import start_simulator
from costmesh.tokens import count_tokens

CATALOG = load_catalog()
SONNET = CATALOG.model("claude-sonnet-4-5")  # min 1024
HAIKU = CATALOG.model("claude-haiku-4-5")  # min 4096
GPT = CATALOG.model("gpt-5.1")


def text_of(tag: str, tokens: int) -> str:
    words, out = 0, []
    while True:
        out.append(f"{tag} sentence {words} about the shared corpus.")
        words += 1
        if words % 50 == 0 and count_tokens(" ".join(out)) >= tokens:
            return " ".join(out)


DOC = text_of("doc", 3200)
SYSTEM = text_of("sys", 1200)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def rag(question: str, doc: str = DOC, system: str = SYSTEM) -> tuple[Message, ...]:
    return (
        Message.of(Role.SYSTEM, system),
        Message(Role.USER, (Part(text=doc), Part(text=question))),
    )


def marks(policy, model, messages, tenant="t1") -> dict:
    return dict(policy.place(model, messages, tenant))


def test_rag_marks_system_and_document_not_the_question():
    placed = marks(AutoBreakpoints(), SONNET, rag("What is in it?"))
    assert placed == {(0, 0): TTL_5M, (1, 0): TTL_5M}


def test_never_marks_a_prefix_below_the_minimum():
    slots = {s.at: s.end for s in layout(rag("q?"))}
    assert slots[(0, 0)] < HAIKU.min_cacheable_tokens <= slots[(1, 0)]
    placed = marks(AutoBreakpoints(), HAIKU, rag("q?"))
    assert placed == {(1, 0): TTL_5M}  # the system prompt alone is too short for Haiku 4.5
    short = (Message.of(Role.SYSTEM, "Be brief."), Message.of(Role.USER, "hi"))
    assert marks(AutoBreakpoints(), SONNET, short) == {}
    for model in (SONNET, HAIKU):
        for at in marks(AutoBreakpoints(), model, rag("q?")):
            assert slots[at] >= model.min_cacheable_tokens


def test_at_most_four_breakpoints_and_client_marks_survive():
    long_parts = tuple(Part(text=text_of(f"ctx{i}", 1100)) for i in range(6))
    messages = (
        Message(Role.SYSTEM, (Part(text="Short instructions.", cache_breakpoint=True),)),
        Message(Role.USER, (*long_parts, Part(text="question?"))),
        Message.of(Role.ASSISTANT, "an answer"),
        Message(Role.USER, (Part(text="follow-up", cache_breakpoint=True),)),
    )
    placed = marks(AutoBreakpoints(), SONNET, messages)
    assert len(placed) == MAX_BREAKPOINTS
    assert (0, 0) in placed and (3, 0) in placed  # the client's own, even the short one
    request = anthropic_adapter.build_request(SONNET, messages, Sampling(), AutoBreakpoints(), "t1")
    blocks = [*request["system"], *(b for m in request["messages"] for b in m["content"])]
    assert sum("cache_control" in b for b in blocks) == MAX_BREAKPOINTS


def test_conversation_so_far_is_marked():
    messages = (
        Message.of(Role.SYSTEM, SYSTEM),
        Message.of(Role.USER, DOC),
        Message.of(Role.ASSISTANT, "The document covers sentences."),
        Message.of(Role.USER, "And then?"),
    )
    placed = marks(AutoBreakpoints(), SONNET, messages)
    assert (2, 0) in placed  # end of the history, before the new question
    assert (3, 0) not in placed


def test_ttl_break_even_from_the_multipliers():
    # nothing seen before: a 5m write (1.25x) is the cheaper bet
    assert choose_ttl(SONNET, Reuse(0, None)) == TTL_5M
    # reused every minute: 5m entries stay alive (refreshed on hit), 1h would only cost more
    assert choose_ttl(SONNET, Reuse(10, 60.0)) == TTL_5M
    # reused every 10 minutes: 5m rewrites each time (1.25x), 1h writes once (2x) then reads (0.1x)
    assert choose_ttl(SONNET, Reuse(1, 600.0)) == TTL_1H  # 2 + 0.1 < 1.25 + 1.25
    # reused less than hourly: neither survives, the 5m write is cheaper
    assert choose_ttl(SONNET, Reuse(1, 4000.0)) == TTL_5M


def test_reuse_record_picks_1h_for_a_prefix_seen_minutes_apart_and_keeps_1h_first():
    clock = FakeClock()
    policy = AutoBreakpoints(ReuseTracker(clock=clock))
    assert set(marks(policy, SONNET, rag("q1")).values()) == {TTL_5M}
    clock.t += 600  # the same system prompt and document, ten minutes later, another question
    placed = marks(policy, SONNET, rag("q2"))
    assert placed == {(0, 0): TTL_1H, (1, 0): TTL_1H}
    clock.t += 600  # the system prompt again, with a new document: only the system prefix is known
    placed = marks(policy, SONNET, rag("q3", doc=text_of("other", 2000)))
    assert placed == {(0, 0): TTL_1H, (1, 0): TTL_5M}
    # another tenant's prompts are its own record
    assert set(marks(policy, SONNET, rag("q2"), tenant="t2").values()) == {TTL_5M}
    request = anthropic_adapter.build_request(SONNET, rag("q4"), Sampling(), policy, "t1")
    assert request["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_openai_prompt_cache_key_from_tenant_and_system_prompt():
    key = openai_adapter.prompt_cache_key
    assert key("t1", rag("a")) == key("t1", rag("b", doc="other document"))
    assert key("t1", rag("a")) != key("t2", rag("a"))
    assert key("t1", rag("a")) != key("t1", rag("a", system="Another system prompt."))
    assert key("", (Message.of(Role.USER, "hi"),)) is None
    body = openai_adapter.build_request(GPT, rag("a"), Sampling(), "t1")
    assert body["prompt_cache_key"] == key("t1", rag("a"))


# -- against the simulator ------------------------------------------------------------------------


@pytest.fixture
async def sim():
    simulator = await start_simulator(port=0, books=[])
    yield simulator
    await simulator.stop()


async def test_second_rag_request_reads_the_cache_and_costs_what_the_accounting_says(sim):
    client = anthropic.AsyncAnthropic(api_key="tenant-key", base_url=sim.url, max_retries=0)
    adapter = AnthropicAdapter(client, AutoBreakpoints())
    sampling = Sampling(max_tokens=64)
    first = await adapter.generate(SONNET, rag("What is sentence 3 about?"), sampling, "t1")
    prefix = {s.at: s.end for s in layout(rag("x"))}[(1, 0)]
    assert first.usage.cache_write_tokens == prefix and first.usage.cache_read_tokens == 0
    second = await adapter.generate(SONNET, rag("What is sentence 7 about?"), sampling, "t1")
    assert second.usage.cache_read_tokens == prefix and second.usage.cache_write_tokens == 0
    uncached = second.usage.input_tokens - prefix
    expected = (uncached * 3 + prefix * 3 * 0.1 + second.usage.output_tokens * 15) * 1e-6
    assert second.cost.total_usd == pytest.approx(expected, rel=1e-12)
    assert second.cost == cost_of(SONNET, second.usage)
    # streamed, the same prompt costs exactly the same
    events = [e async for e in adapter.stream(SONNET, rag("What is sentence 7 about?"), sampling, "t1")]
    assert events[-1].usage == second.usage and events[-1].cost == second.cost
    # without breakpoints nothing is cached, and the repeat costs list price
    plain = AnthropicAdapter(client, anthropic_adapter.ClientBreakpoints())
    again = await plain.generate(SONNET, rag("What is sentence 7 about?", doc=DOC + " more"), sampling, "t1")
    assert again.usage.cache_read_tokens == again.usage.cache_write_tokens == 0
    assert again.cost.total_usd > 5 * second.cost.total_usd
    await adapter.close()


async def test_openai_repeat_reads_cached_tokens_under_its_cache_key(sim):
    adapter = OpenAIAdapter(openai.AsyncOpenAI(api_key="tenant-key", base_url=sim.url + "/v1", max_retries=0))
    sampling = Sampling(max_tokens=64)
    first = await adapter.generate(GPT, rag("q one?"), sampling, "t1")
    assert first.usage.cache_read_tokens == 0
    second = await adapter.generate(GPT, rag("q two?"), sampling, "t1")
    cached = second.usage.cache_read_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached < second.usage.input_tokens
    expected = ((second.usage.input_tokens - cached) * 1.25 + cached * 0.125 + second.usage.output_tokens * 10) * 1e-6
    assert second.cost.total_usd == pytest.approx(expected, rel=1e-12)
    events = [e async for e in adapter.stream(GPT, rag("q two?"), sampling, "t1")]
    assert events[-1].usage == second.usage and events[-1].cost == second.cost
    other_tenant = await adapter.generate(GPT, rag("q two?"), sampling, "t2")  # another key: its own cache
    assert other_tenant.usage.cache_read_tokens == 0
    await adapter.close()


async def test_streamed_1h_and_5m_writes_cost_what_the_same_call_costs_unstreamed(sim):
    """Two fresh caches (two keys), the same 1h+5m write, once streamed and once not: identical bills."""
    clock = FakeClock()
    tracker = ReuseTracker(clock=clock)
    warm = AutoBreakpoints(tracker)
    warm.place(SONNET, rag("q", doc=text_of("earlier", 1500)), "t1")
    clock.t += 900  # the system prompt was seen 15 minutes ago (1h TTL); this document never (5m)
    policy = AutoBreakpoints(tracker)
    sampling = Sampling(max_tokens=64)
    generations = []
    for key, streamed in (("plain-key", False), ("stream-key", True)):
        client = anthropic.AsyncAnthropic(api_key=key, base_url=sim.url, max_retries=0)
        adapter = AnthropicAdapter(client, _Frozen(policy.place(SONNET, rag("q"), "t1")))
        if streamed:
            generations.append([e async for e in adapter.stream(SONNET, rag("q"), sampling, "t1")][-1])
        else:
            generations.append(await adapter.generate(SONNET, rag("q"), sampling, "t1"))
        await adapter.close()
    plain, streamed = generations
    assert 0 < plain.usage.cache_write_1h_tokens < plain.usage.cache_write_tokens
    assert streamed.usage == plain.usage and streamed.cost == plain.cost
    write_1h = plain.usage.cache_write_1h_tokens
    write_5m = plain.usage.cache_write_tokens - write_1h
    assert plain.cost.cache_write_usd == pytest.approx((write_1h * 3 * 2.0 + write_5m * 3 * 1.25) * 1e-6)


class _Frozen:
    def __init__(self, marks):
        self.marks = marks

    def place(self, model, messages, tenant_id="", tools=()):
        return self.marks
