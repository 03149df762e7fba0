"""The official SDKs over httpx (their default) against aiohttp (`DefaultAioHttpClient`), interleaved.

    python -m costmesh.tooling.bench.sdk_transports [--rounds 6] [--calls 100] [--output FILE]

What the providers service's choice (`COSTMESH_PROVIDER_HTTP_CLIENT`) rests on. The simulator
(no artificial latency) and the `openai` and `anthropic` SDKs, each with both transports, in one
process: the simulator's own CPU, the same for every client, is inside each figure, so the ratios
understate the transports' difference. Each round runs every client, the order rotated: `--calls`
calls one at a time (p50 latency and this process's CPU per call), then 20 x 32 calls at
concurrency 32 (calls/s and CPU per call). Reported: medians over the rounds, and the median of
the per-round ratios of httpx's CPU per call to aiohttp's (above 1, aiohttp is cheaper). Paired
ratios hold up on a machine whose speed drifts; absolute numbers do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anthropic
import openai

from costmesh.services.simulator import start_simulator

CONCURRENCY = 32
PER_WORKER = 20
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
OPENAI_MODEL = "gpt-5-nano"
ANTHROPIC_MODEL = "claude-haiku-4-5"

Call = Callable[[int], Awaitable[object]]


def _clients(url: str) -> dict[str, tuple[Call, Callable[[], Awaitable[None]]]]:
    """name -> (one call, close)."""
    found = {}
    for transport in ("httpx", "aiohttp"):
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0,
                                http_client=openai.DefaultAioHttpClient() if transport == "aiohttp" else None)
        an = anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=0,
                                      http_client=anthropic.DefaultAioHttpClient() if transport == "aiohttp" else None)

        async def call_openai(i: int, client=oa) -> object:
            return await client.chat.completions.create(model=OPENAI_MODEL, max_tokens=64, messages=QUESTION)

        async def call_anthropic(i: int, client=an) -> object:
            return await client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=QUESTION)

        found[f"openai/{transport}"] = (call_openai, oa.close)
        found[f"anthropic/{transport}"] = (call_anthropic, an.close)
    return found


async def _round(call: Call, calls: int) -> dict[str, float]:
    cpu = time.process_time()
    latencies = []
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - started)
    sequential_cpu = (time.process_time() - cpu) / calls
    cpu, wall = time.process_time(), time.perf_counter()

    async def worker(w: int) -> None:
        for i in range(PER_WORKER):
            await call(w * PER_WORKER + i)

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    n = CONCURRENCY * PER_WORKER
    return {"p50_ms": statistics.median(latencies) * 1000, "cpu_ms_per_call": sequential_cpu * 1000,
            "rps_c32": n / (time.perf_counter() - wall), "cpu_ms_per_call_c32": (time.process_time() - cpu) * 1000 / n}


async def measure(rounds: int, calls: int) -> dict:
    simulator = await start_simulator(port=0)
    clients = _clients(simulator.url)
    try:
        for call, _ in clients.values():  # connections and first-call work, before any measurement
            for i in range(20):
                await call(i)
        names = list(clients)
        per: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                per[name].append(await _round(clients[name][0], calls))
    finally:
        for _, close in clients.values():
            await close()
        await simulator.stop()
    result: dict = {"rounds": rounds, "calls_sequential": calls, "calls_concurrent": CONCURRENCY * PER_WORKER}
    for name, runs in per.items():
        result[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    for sdk in ("openai", "anthropic"):
        httpx_runs, aiohttp_runs = per[f"{sdk}/httpx"], per[f"{sdk}/aiohttp"]
        result[f"{sdk}_cpu_ratio"] = statistics.median(
            h["cpu_ms_per_call"] / a["cpu_ms_per_call"] for h, a in zip(httpx_runs, aiohttp_runs, strict=True))
        result[f"{sdk}_cpu_ratio_c32"] = statistics.median(
            h["cpu_ms_per_call_c32"] / a["cpu_ms_per_call_c32"] for h, a in zip(httpx_runs, aiohttp_runs, strict=True))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    result = asyncio.run(measure(args.rounds, args.calls))
    for name in ("openai/httpx", "openai/aiohttp", "anthropic/httpx", "anthropic/aiohttp"):
        r = result[name]
        print(f"{name:<18} p50 {r['p50_ms']:6.2f} ms  CPU/call {r['cpu_ms_per_call']:5.2f} ms  "
              f"c{CONCURRENCY} {r['rps_c32']:6.1f}/s, CPU/call {r['cpu_ms_per_call_c32']:5.2f} ms")
    for sdk in ("openai", "anthropic"):
        print(f"{sdk}: httpx's CPU per call / aiohttp's {result[f'{sdk}_cpu_ratio']:.2f} one at a time, "
              f"{result[f'{sdk}_cpu_ratio_c32']:.2f} at c{CONCURRENCY}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
