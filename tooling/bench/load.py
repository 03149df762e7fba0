"""Section `load`: 32 concurrent clients on cache-miss traffic, then on cache-hit traffic.

Miss phase: distinct questions never asked before (the MMLU, GSM8K and MT-bench books,
mixed), cache on. When the books run out before the phase ends, they are asked again under
a new tenant: the cache never shares an answer across tenants, so each is still a miss.
Hit phase: the questions answered uncached in the first phase (misses, and answers after a
lookup that timed out or failed: both are stored), asked again by the same tenant, cycling;
an answer that was not stored shows there as a miss.

Client side: answered requests/s, p50/p99 latency (failed calls included), `errors` (every
call that failed, by status code). Gateway side (GetStats, the difference over each phase):
cache lookups that timed out (answered uncached) or came back busy, and answers not stored:
dropped from the full store queue, failed, or still queued after a short drain at the end.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from itertools import cycle
from types import SimpleNamespace

import grpc
import numpy as np

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

MAX_TOKENS = 256
CONCURRENCY = 32
PHASE_S, QUICK_PHASE_S = 120.0, 20.0
DRAIN_S = 15.0  # how long the end of a phase waits for the gateway's store queue to empty
CALL_TIMEOUT_S = 60.0
BOOKS = ("mmlu_routing_dev.jsonl.gz", "gsm8k_routing_dev.jsonl.gz", "mtbench_routing_dev.jsonl.gz")
MAX_ROUNDS = 20  # tenants: how many times the books may be asked anew in the miss phase

# GetStats fields read (getattr, default 0: a gateway or stubs without them read as 0).
COUNTERS = (
    "requests", "errors", "exact_hits", "semantic_hits", "cache_unavailable",
    "cache_lookups_timed_out", "cache_lookups_busy", "cache_stores_dropped", "cache_stores_failed",
    "cache_stores_pending", "cache_stores",
)

Item = tuple[str, str]  # (tenant, prompt)
# Answers the gateway does not store: served from the cache, or asked with the cache bypassed.
# A miss, or an uncached answer after a lookup that failed or timed out, is stored.
NOT_STORED = frozenset({gw.CACHE_STATUS_EXACT_HIT, gw.CACHE_STATUS_SEMANTIC_HIT, gw.CACHE_STATUS_BYPASSED})


@dataclass
class Phase:
    name: str
    elapsed_s: float = 0.0
    answered: int = 0
    errors: int = 0
    error_codes: Counter = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)  # every call, failed ones included
    cache: Counter = field(default_factory=Counter)  # CacheStatus names of the answers
    uncached: list[Item] = field(default_factory=list)  # answered uncached (a miss, or the cache down): asked again
    exhausted: bool = False  # the phase ran out of questions before its time was up

    @property
    def rps(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0


def missing_stats_fields() -> list[str]:
    """GetStats counters the generated stubs do not know yet (read as 0)."""
    known = gw.GetStatsResponse.DESCRIPTOR.fields_by_name
    return [name for name in COUNTERS if name not in known]


def counters(stats) -> dict[str, int]:
    return {name: int(getattr(stats, name, 0)) for name in COUNTERS}


async def drive(call: Callable[[Item], Awaitable[gw.CompleteResponse]], items: Iterator[Item], name: str,
                duration_s: float, concurrency: int) -> Phase:
    """`concurrency` workers call `call` on the next item until `duration_s` is spent (a call in
    flight then finishes) or the items run out."""
    phase = Phase(name)
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s

    async def worker() -> None:
        while loop.time() < end:
            item = next(items, None)
            if item is None:
                phase.exhausted = True
                return
            started = time.perf_counter()
            try:
                response = await call(item)
            except grpc.RpcError as exc:
                phase.errors += 1
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                phase.error_codes[code.name if code is not None else type(exc).__name__] += 1
            except Exception as exc:  # noqa: BLE001 - a failed call of any kind is counted, never fatal
                phase.errors += 1
                phase.error_codes[type(exc).__name__] += 1
            else:
                phase.answered += 1
                status = gw.CacheStatus.Name(response.cache_status)
                phase.cache[status.removeprefix("CACHE_STATUS_").lower()] += 1
                if response.cache_status not in NOT_STORED:
                    phase.uncached.append(item)
            phase.latencies_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.elapsed_s = time.perf_counter() - started
    return phase


class TenantsClient:
    """`client` whose `stats()` adds up the GetStats of every tenant: GetStats answers the figures
    of the caller's tenant only."""

    def __init__(self, client, tenants: list[str]):
        self._client = client
        self._tenants = tenants

    async def complete(self, request: gw.CompleteRequest, timeout: float) -> gw.CompleteResponse:
        return await self._client.complete(request, timeout=timeout)

    async def stats(self) -> SimpleNamespace:
        replies = await asyncio.gather(*(self._client.stats(tenant) for tenant in self._tenants))
        return SimpleNamespace(**{name: sum(int(getattr(r, name, 0)) for r in replies) for name in COUNTERS})


async def drain(stats: Callable[[], Awaitable[object]], timeout_s: float) -> dict[str, int]:
    """Counters once the gateway's store queue is empty, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = counters(await stats())
        if now["cache_stores_pending"] == 0 or time.monotonic() >= deadline:
            return now
        await asyncio.sleep(0.2)


def _ms(samples_s: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(samples_s) * 1000.0, q)), 2) if samples_s else None


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    delta = {name: after[name] - before[name] for name in COUNTERS}
    delta["cache_stores_pending"] = after["cache_stores_pending"]  # a gauge: what is still queued
    return delta


def summarise(miss: Phase, hit: Phase, before: dict[str, int], after_miss: dict[str, int],
              after_hit: dict[str, int]) -> dict:
    miss_stats, hit_stats = _delta(after_miss, before), _delta(after_hit, after_miss)
    total = _delta(after_hit, before)
    everything = miss.latencies_s + hit.latencies_s
    return {
        "miss_rps": round(miss.rps, 2),
        "hit_rps": round(hit.rps, 2),
        "p99_ms": _ms(everything, 99),
        "p50_ms": _ms(everything, 50),
        "miss_p50_ms": _ms(miss.latencies_s, 50),
        "miss_p99_ms": _ms(miss.latencies_s, 99),
        "hit_p50_ms": _ms(hit.latencies_s, 50),
        "hit_p99_ms": _ms(hit.latencies_s, 99),
        "errors": miss.errors + hit.errors,
        "miss_errors": miss.errors,
        "hit_errors": hit.errors,
        "error_codes": dict(miss.error_codes + hit.error_codes),
        "lookups_timed_out": total["cache_lookups_timed_out"],
        "lookups_busy": total["cache_lookups_busy"],
        # Dropped or failed in either phase, plus whatever the queue still held after the drain.
        "answers_not_stored": total["cache_stores_dropped"] + total["cache_stores_failed"]
        + after_hit["cache_stores_pending"],
        "stores": total["cache_stores"],
        "stores_dropped": total["cache_stores_dropped"],
        "stores_failed": total["cache_stores_failed"],
        "stores_pending_at_end": after_hit["cache_stores_pending"],
        "cache_unavailable": total["cache_unavailable"],
        "gateway_errors": total["errors"],
        "miss_requests": miss.answered + miss.errors,
        "hit_requests": hit.answered + hit.errors,
        "miss_seconds": round(miss.elapsed_s, 1),
        "hit_seconds": round(hit.elapsed_s, 1),
        "miss_phase_cache": dict(miss.cache),
        "hit_phase_cache": dict(hit.cache),
        # Questions asked again that the cache did not answer: savings lost (an answer not stored).
        "hit_phase_uncached": hit.answered - hit.cache["exact_hit"] - hit.cache["semantic_hit"],
        "miss_prompts_exhausted": miss.exhausted,
        "phases": {"miss": miss_stats, "hit": hit_stats},
    }


def fresh_questions(prompts: list[str], tenants: list[str]) -> Iterator[Item]:
    """Every prompt under the first tenant, then every prompt under the next, and so on."""
    for tenant in tenants:
        for prompt in prompts:
            yield tenant, prompt


async def run_phases(client, prompts: list[str], tenants: list[str], *, phase_s: float,
                     concurrency: int = CONCURRENCY, drain_s: float = DRAIN_S,
                     warmup_tenant: str | None = None) -> dict:
    """The miss phase then the hit phase against `client` (`complete(request, timeout)`, `stats()`)."""

    async def call(item: Item) -> gw.CompleteResponse:
        tenant, prompt = item
        return await client.complete(build_request(prompt, tenant=tenant, max_tokens=MAX_TOKENS),
                                     timeout=CALL_TIMEOUT_S)

    if warmup_tenant is not None:  # every model loaded and warm; its own tenant, never asked again
        for prompt in prompts[-10:]:
            await call((warmup_tenant, prompt))
    before = await drain(client.stats, drain_s)
    miss = await drive(call, fresh_questions(prompts, tenants), "miss", phase_s, concurrency)
    after_miss = await drain(client.stats, drain_s)
    repeats = cycle(miss.uncached) if miss.uncached else iter(())
    hit = await drive(call, repeats, "hit", phase_s, concurrency)
    after_hit = await drain(client.stats, drain_s)
    result = summarise(miss, hit, before, after_miss, after_hit)
    result["prompt_rounds"] = -(-(miss.answered + miss.errors) // max(len(prompts), 1))
    return result


def load_prompts() -> list[str]:
    prompts: list[str] = []
    for book in BOOKS:
        path = data_dir() / book
        if path.exists():
            prompts.extend(r.prompt for r in load_book(path))
    prompts = list(dict.fromkeys(prompts))
    random.Random(17).shuffle(prompts)
    return prompts


def run(quick: bool = False) -> dict:
    phase_s = QUICK_PHASE_S if quick else PHASE_S
    prompts = load_prompts()
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-load-") as run_dir, start_mesh(
        run_dir, {"COSTMESH_LOG_LEVEL": "warning"}
    ) as mesh:
        tenants = [f"load-{i}" for i in range(MAX_ROUNDS)]
        keys = {tenant: mesh.api_key(tenant) for tenant in [*tenants, "load-warmup"]}

        async def main() -> dict:
            def key(tenant: str) -> str:
                return keys.get(tenant, keys["load-warmup"])

            async with GatewayClient(mesh.gateway, api_key=key) as client:  # GetStats: each tenant's, added up
                return await run_phases(TenantsClient(client, list(keys)), prompts, tenants, phase_s=phase_s,
                                        warmup_tenant="load-warmup")

        result = asyncio.run(main())
    result.update({"concurrency": CONCURRENCY, "phase_s": phase_s, "distinct_prompts": len(prompts)})
    missing = missing_stats_fields()
    if missing:
        result["stats_fields_missing"] = missing  # read as 0: the generated stubs lack them
    return result


def table(result: dict) -> str:
    def cell(value, spec: str) -> str:
        return f"{value:{spec}}" if value is not None else f"{'-':>10}"

    lines = [
        f"load ({result['concurrency']} concurrent, {result['phase_s']:.0f} s per phase, "
        f"{result['distinct_prompts']} distinct questions, {result['prompt_rounds']} round(s))",
        f"  {'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>10}",
        f"  {'cache misses':<24}{result['miss_rps']:>10.1f}{cell(result['miss_p50_ms'], '>10.1f')}"
        f"{cell(result['miss_p99_ms'], '>10.1f')}{result['miss_requests']:>10}{result['miss_errors']:>10}",
        f"  {'cache hits':<24}{result['hit_rps']:>10.1f}{cell(result['hit_p50_ms'], '>10.1f')}"
        f"{cell(result['hit_p99_ms'], '>10.1f')}{result['hit_requests']:>10}{result['hit_errors']:>10}",
        f"  {'overall':<24}{'':>10}{cell(result['p50_ms'], '>10.1f')}{cell(result['p99_ms'], '>10.1f')}"
        f"{'':>10}{result['errors']:>10}",
        f"  errors by code: {result['error_codes'] or '-'}",
        f"  lookups timed out {result['lookups_timed_out']}, busy {result['lookups_busy']}, "
        f"cache unavailable {result['cache_unavailable']}",
        f"  answers not stored {result['answers_not_stored']} (dropped {result['stores_dropped']}, "
        f"failed {result['stores_failed']}, pending at end {result['stores_pending_at_end']}); "
        f"stored {result['stores']}",
        f"  answers by cache status: misses phase {result['miss_phase_cache']}, hits phase {result['hit_phase_cache']}",
        f"  hits phase answered uncached (savings lost): {result['hit_phase_uncached']}",
    ]
    if result.get("stats_fields_missing"):
        lines.append(f"  GetStats fields not in the stubs (read as 0): {', '.join(result['stats_fields_missing'])}")
    return "\n".join(lines)
