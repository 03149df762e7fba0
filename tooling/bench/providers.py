"""Section `providers`: what prompt caching and the batch APIs save, from the accounting of real calls.

Everything runs against the simulator (latency 0), which bills prompt caching and batches as
the providers document them; every figure is the sum of the exact costs the adapters computed
from the usage the simulator returned, baselines in the same run.

- RAG: one 50,000-token shared document, then 1, 10 and 100 questions about it, each run on a
  fresh API key (an empty provider cache). Anthropic (claude-sonnet-4-5): automatic cache
  breakpoints vs none (measured both ways). OpenAI (gpt-5.1): caching is automatic and cannot be
  switched off, so the baseline is the same calls' tokens at list price (nothing cached).
  `rag_saving_N` = 1 - cached cost / uncached cost (Anthropic).
- Batch: the same 1,000 MMLU questions (half to claude-haiku-4-5, half to gpt-5-mini) answered
  interactively (concurrency 32) and through the Message Batches / Batch APIs (the code path of
  the providers service's batch RPCs). `batch_saving` = 1 - batched cost / interactive cost. The
  simulator ends a batch on the first poll, so its completion time says nothing about the
  real APIs' (minutes to 24 hours).
"""

from __future__ import annotations

import asyncio
import os
import time

import anthropic
import openai

from costmesh.catalog import load_catalog
from costmesh.domain import Message, Part, Role, Sampling
from costmesh.pricing import list_cost_of
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.batches import AnthropicBatches, BatchCall, OpenAIBatches, ProviderBatchAPI
from costmesh.services.providers.cache_breakpoints import AutoBreakpoints, ClientBreakpoints
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.simulator import start_simulator
from costmesh.tokens import get_counter
from costmesh.tooling.datasets import data_dir, load_book

DOC_TOKENS = 50_000
QUESTION_COUNTS = (1, 10, 100)
RAG_MAX_TOKENS = 200
BATCH_REQUESTS = 1000
BATCH_MAX_TOKENS = 256
ANTHROPIC_RAG, OPENAI_RAG = "claude-sonnet-4-5", "gpt-5.1"
ANTHROPIC_BATCH, OPENAI_BATCH = "claude-haiku-4-5", "gpt-5-mini"
SYSTEM = "You answer questions about the attached document. Quote the passage you rely on."


def shared_document(tokens: int = DOC_TOKENS) -> str:
    """A deterministic document of `tokens` tokens (cl100k)."""
    counter = get_counter()
    parts, n = [], 0
    while True:
        parts.append(
            f"Section {n}. The warehouse in district {n % 17} shipped {n * 37 % 1000} crates of part "
            f"{n * 7919 % 10007} on day {n % 365}; the audit recorded {n * 13 % 97} exceptions."
        )
        n += 1
        if n % 200 == 0:
            text = "\n".join(parts)
            if counter.count(text) >= tokens:
                return counter.truncate(text, tokens)


def rag_messages(document: str, question: str) -> tuple[Message, ...]:
    return (Message.of(Role.SYSTEM, SYSTEM), Message(Role.USER, (Part(text=document), Part(text=question))))


def questions(n: int) -> list[str]:
    return [f"Question {i}: how many crates did district {i % 17} ship on day {i * 3 % 365}?" for i in range(n)]


async def _rag(sim_url: str, document: str) -> dict:
    catalog = load_catalog()
    sampling = Sampling(max_tokens=RAG_MAX_TOKENS)
    out: dict = {}
    for n in QUESTION_COUNTS:
        model = catalog.model(ANTHROPIC_RAG)
        costs = {}
        for mode, policy in (("cached", AutoBreakpoints()), ("uncached", ClientBreakpoints())):
            client = anthropic.AsyncAnthropic(api_key=f"bench-rag-{n}-{mode}", base_url=sim_url, max_retries=0)
            adapter = AnthropicAdapter(client, policy)
            total = 0.0
            for question in questions(n):
                total += (
                    await adapter.generate(model, rag_messages(document, question), sampling, "bench")
                ).cost.total_usd
            costs[mode] = total
            await adapter.close()
        out[f"anthropic_{n}"] = {"cost_cached_usd": costs["cached"], "cost_uncached_usd": costs["uncached"],
                                 "saving": 1 - costs["cached"] / costs["uncached"]}

        model = catalog.model(OPENAI_RAG)
        client = openai.AsyncOpenAI(api_key=f"bench-rag-{n}", base_url=sim_url + "/v1", max_retries=0)
        adapter = OpenAIAdapter(client)
        cached = listed = 0.0
        for question in questions(n):
            generation = await adapter.generate(model, rag_messages(document, question), sampling, "bench")
            cached += generation.cost.total_usd
            listed += list_cost_of(model, generation.usage).total_usd
        await adapter.close()
        out[f"openai_{n}"] = {"cost_cached_usd": cached, "cost_uncached_usd": listed, "saving": 1 - cached / listed}
    return out


def batch_prompts(n: int) -> list[str]:
    try:
        book = load_book(data_dir() / "mmlu_routing_dev.jsonl.gz")
        prompts = list(dict.fromkeys(r.prompt for r in book))
    except OSError:
        prompts = []
    prompts += [f"Explain in two sentences what item {i} of a shipping manifest records." for i in range(n)]
    return prompts[:n]


async def _interactive(sim_url: str, calls: list[BatchCall]) -> tuple[float, float]:
    anthropic_adapter = AnthropicAdapter(
        anthropic.AsyncAnthropic(api_key="bench-interactive", base_url=sim_url, max_retries=0)
    )
    openai_adapter = OpenAIAdapter(openai.AsyncOpenAI(api_key="bench-interactive", base_url=sim_url + "/v1",
                                                      max_retries=0))
    gate = asyncio.Semaphore(32)

    async def one(call: BatchCall) -> float:
        adapter = anthropic_adapter if call.model.provider == "anthropic" else openai_adapter
        async with gate:
            generation = await adapter.generate(call.model, call.messages, call.sampling, call.tenant_id)
        return generation.cost.total_usd

    started = time.perf_counter()
    costs = await asyncio.gather(*(one(call) for call in calls))
    elapsed = time.perf_counter() - started
    await anthropic_adapter.close()
    await openai_adapter.close()
    return sum(costs), elapsed


async def _batched(sim_url: str, calls: list[BatchCall], poll_s: float) -> tuple[float, float, int]:
    discount = load_catalog().batch_discount
    a_client = anthropic.AsyncAnthropic(api_key="bench-batch", base_url=sim_url, max_retries=0)
    o_client = openai.AsyncOpenAI(api_key="bench-batch", base_url=sim_url + "/v1", max_retries=0)
    apis: dict[str, ProviderBatchAPI] = {
        "anthropic": AnthropicBatches(a_client, discount),
        "openai": OpenAIBatches(o_client, discount),
    }
    started = time.perf_counter()
    submitted = []
    for provider, api in apis.items():
        group = [c for c in calls if c.model.provider == provider]
        batch_id = await api.submit(api.payload(group), "bench")
        submitted.append((api, batch_id, {c.custom_id: c.model for c in group}))
    total, answered, polls = 0.0, 0, 0
    for api, batch_id, models in submitted:
        while not await api.ended(batch_id):
            polls += 1
            await asyncio.sleep(poll_s)
        for result in await api.results(batch_id, models):
            if result.generation is not None:
                total += result.generation.cost.total_usd
                answered += 1
    elapsed = time.perf_counter() - started
    await a_client.close()
    await o_client.close()
    if answered != len(calls):
        raise RuntimeError(f"batch answered {answered} of {len(calls)} requests")
    return total, elapsed, polls


async def _batch(sim_url: str, n: int, poll_s: float) -> dict:
    catalog = load_catalog()
    sampling = Sampling(max_tokens=BATCH_MAX_TOKENS)
    models = (catalog.model(ANTHROPIC_BATCH), catalog.model(OPENAI_BATCH))
    calls = [
        BatchCall(f"r{i}", models[i % 2], (Message.of(Role.USER, prompt),), sampling, "bench")
        for i, prompt in enumerate(batch_prompts(n))
    ]
    interactive_cost, interactive_s = await _interactive(sim_url, calls)
    batch_cost, batch_s, polls = await _batched(sim_url, calls, poll_s)
    return {
        "requests": len(calls),
        "models": [m.id for m in models],
        "interactive_cost_usd": interactive_cost,
        "batch_cost_usd": batch_cost,
        "interactive_seconds": interactive_s,
        "batch_seconds_simulated": batch_s,
        "batch_polls": polls,
        "saving": 1 - batch_cost / interactive_cost,
    }


async def _measure(quick: bool, poll_s: float) -> dict:
    sim = await start_simulator(port=0, latency_ms=0.0, ms_per_output_token=0.0, books=[], batch_latency_s=0.0)
    try:
        document = shared_document()
        rag = await _rag(sim.url, document)
        batch = await _batch(sim.url, 200 if quick else BATCH_REQUESTS, poll_s)
    finally:
        await sim.stop()
    return {
        "doc_tokens": DOC_TOKENS,
        "rag": rag,
        "batch": batch,
        **{f"rag_saving_{n}": rag[f"anthropic_{n}"]["saving"] for n in QUESTION_COUNTS},
        **{f"openai_rag_saving_{n}": rag[f"openai_{n}"]["saving"] for n in QUESTION_COUNTS},
        "batch_saving": batch["saving"],
    }


def run(quick: bool = False, poll_s: float | None = None) -> dict:
    """`poll_s`: how often the batch is polled (default `$COSTMESH_BENCH_BATCH_POLL_S`, else 0.05 s)."""
    if poll_s is None:
        poll_s = float(os.environ.get("COSTMESH_BENCH_BATCH_POLL_S", "0.05"))
    return asyncio.run(_measure(quick, poll_s))


def table(result: dict) -> str:
    rag = result["rag"]
    lines = [
        f"providers: RAG over a {result['doc_tokens']:,}-token shared document (cost in USD, all questions)",
        f"  {'questions':<10}{'model':<18}{'no caching':>12}{'auto caching':>14}{'saving':>9}",
    ]
    for n in QUESTION_COUNTS:
        for provider, model in (("anthropic", ANTHROPIC_RAG), ("openai", OPENAI_RAG)):
            row = rag[f"{provider}_{n}"]
            lines.append(
                f"  {n:<10}{model:<18}{row['cost_uncached_usd']:>12.4f}{row['cost_cached_usd']:>14.4f}"
                f"{row['saving']:>9.1%}"
            )
    batch = result["batch"]
    lines += [
        f"providers: {batch['requests']} requests ({', '.join(batch['models'])}) interactive vs batched",
        f"  {'':<14}{'cost USD':>12}{'seconds':>10}",
        f"  {'interactive':<14}{batch['interactive_cost_usd']:>12.4f}{batch['interactive_seconds']:>10.2f}",
        f"  {'batched':<14}{batch['batch_cost_usd']:>12.4f}{batch['batch_seconds_simulated']:>10.2f}"
        f"  (simulated batch latency 0; real batches take minutes to 24 h)",
        f"  batch saving {batch['saving']:.1%}",
    ]
    return "\n".join(lines)
