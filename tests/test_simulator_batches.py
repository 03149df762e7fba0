"""The simulator's batch APIs through the official SDKs: create, poll, results, cancel, expiry, limits."""

from __future__ import annotations

import io
import json

import anthropic
import httpx2
import openai
import pytest

from costmesh.services.simulator import start_simulator

SONNET, GPT = "claude-sonnet-4-5", "gpt-5-mini"


def claude_params(question: str, **extra) -> dict:
    return {"model": SONNET, "max_tokens": 32, "messages": [{"role": "user", "content": question}], **extra}


def gpt_line(custom_id: str, question: str, model: str = GPT) -> dict:
    body = {"model": model, "max_completion_tokens": 32, "messages": [{"role": "user", "content": question}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
async def sim():
    simulator = await start_simulator(port=0, books=[], batch_latency_s=1.0)
    yield simulator
    await simulator.stop()


async def advance(sim, seconds: float) -> None:
    async with httpx2.AsyncClient() as http:
        (await http.post(f"{sim.url}/_sim/clock", json={"advance_s": seconds})).raise_for_status()


async def test_anthropic_batch_create_poll_results(sim):
    client = anthropic.AsyncAnthropic(api_key="k1", base_url=sim.url, max_retries=0)
    batch = await client.messages.batches.create(
        requests=[
            {"custom_id": "a", "params": claude_params("What is 2+2?")},
            {"custom_id": "b", "params": claude_params("Name a colour.")},
            {"custom_id": "bad", "params": {**claude_params("x"), "model": "no-such-model"}},
        ]
    )
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3 and batch.results_url is None
    assert (await client.messages.batches.retrieve(batch.id)).processing_status == "in_progress"
    await advance(sim, 2)
    done = await client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.results_url
    assert (done.request_counts.succeeded, done.request_counts.errored) == (2, 1)
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.content[0].text
    assert results["a"].message.usage.input_tokens > 0 and results["a"].message.usage.output_tokens > 0
    assert results["bad"].type == "errored" and results["bad"].error.error.type == "not_found_error"
    other = anthropic.AsyncAnthropic(api_key="k2", base_url=sim.url, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):  # batches belong to the key that made them
        await other.messages.batches.retrieve(batch.id)


async def test_anthropic_batch_requests_share_the_prompt_cache(sim):
    client = anthropic.AsyncAnthropic(api_key="k1", base_url=sim.url, max_retries=0)
    doc = " ".join(f"Fact {i}: the sky was clear on day {i}." for i in range(300))
    system = [{"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}}]
    batch = await client.messages.batches.create(
        requests=[{"custom_id": f"q{i}", "params": claude_params(f"Day {i}?", system=system)} for i in range(3)]
    )
    await advance(sim, 2)
    await client.messages.batches.retrieve(batch.id)
    usage = {r.custom_id: r.result.message.usage async for r in await client.messages.batches.results(batch.id)}
    assert usage["q0"].cache_creation_input_tokens > 1024 and usage["q0"].cache_read_input_tokens == 0
    assert usage["q1"].cache_read_input_tokens == usage["q0"].cache_creation_input_tokens


async def test_anthropic_batch_cancel_and_expiry(sim):
    client = anthropic.AsyncAnthropic(api_key="k1", base_url=sim.url, max_retries=0)
    batch = await client.messages.batches.create(requests=[{"custom_id": "a", "params": claude_params("hi")}])
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 1
    assert [r.result.type async for r in await client.messages.batches.results(batch.id)] == ["canceled"]

    sim.state.batches.latency_s = 30 * 3600.0  # a batch that cannot finish inside the 24h window
    late = await client.messages.batches.create(requests=[{"custom_id": "a", "params": claude_params("hi")}])
    await advance(sim, 23 * 3600)
    assert (await client.messages.batches.retrieve(late.id)).processing_status == "in_progress"
    await advance(sim, 3600)
    expired = await client.messages.batches.retrieve(late.id)
    assert expired.processing_status == "ended" and expired.request_counts.expired == 1


async def test_anthropic_batch_limits(sim):
    client = anthropic.AsyncAnthropic(api_key="k1", base_url=sim.url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        await client.messages.batches.create(requests=[{"custom_id": "has space", "params": claude_params("x")}])
    with pytest.raises(anthropic.BadRequestError, match="duplicate"):
        await client.messages.batches.create(
            requests=[{"custom_id": "a", "params": claude_params("x")},
                      {"custom_id": "a", "params": claude_params("y")}]
        )
    too_many = [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]
    with pytest.raises(anthropic.BadRequestError, match="100000"):
        await client.messages.batches.create(requests=too_many)


async def test_openai_batch_files_create_poll_output(sim):
    client = openai.AsyncOpenAI(api_key="k1", base_url=sim.url + "/v1", max_retries=0)
    lines = [gpt_line("a", "What is 2+2?"), gpt_line("b", "Name a colour.")]
    lines.append({**gpt_line("c", "x"), "body": {**gpt_line("c", "x")["body"], "temperature": 9}})
    uploaded = await client.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 3
    await advance(sim, 2)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    output = [json.loads(x) for x in (await client.files.content(done.output_file_id)).text.splitlines()]
    assert {x["custom_id"] for x in output} == {"a", "b"}
    body = output[0]["response"]["body"]
    assert output[0]["response"]["status_code"] == 200 and body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 0
    errors = [json.loads(x) for x in (await client.files.content(done.error_file_id)).text.splitlines()]
    assert errors[0]["custom_id"] == "c" and errors[0]["response"]["status_code"] == 400


async def test_openai_batch_validation_cancel_and_expiry(sim):
    client = openai.AsyncOpenAI(api_key="k1", base_url=sim.url + "/v1", max_retries=0)
    mixed = [gpt_line("a", "x"), gpt_line("b", "y", model="gpt-5-nano")]
    uploaded = await client.files.create(file=("in.jsonl", io.BytesIO(jsonl(mixed))), purpose="batch")
    failed = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                         completion_window="24h")
    assert failed.status == "failed" and failed.errors.data[0].code == "mismatched_model"
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                    completion_window="48h")

    good = await client.files.create(file=("in.jsonl", io.BytesIO(jsonl([gpt_line("a", "x")]))), purpose="batch")
    batch = await client.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions",
                                        completion_window="24h")
    assert (await client.batches.cancel(batch.id)).status == "cancelling"
    cancelled = await client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.error_file_id and not cancelled.output_file_id

    sim.state.batches.latency_s = 30 * 3600.0
    late = await client.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")
    await advance(sim, 24 * 3600)
    expired = await client.batches.retrieve(late.id)
    assert expired.status == "expired"
    errors = (await client.files.content(expired.error_file_id)).text
    assert json.loads(errors.splitlines()[0])["error"]["code"] == "batch_expired"
