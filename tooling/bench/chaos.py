"""Section `chaos`: kill -9 each process of the mesh in turn under load, and count what it cost.

The mesh as `costmesh serve` runs it (the launcher: every service its own process, the embedded
Redis with its AOF, the supervisor that starts a dead process again). Before the chaos: a daily
budget on the load's tenant (`costmesh limits`, far above what the run spends, so it never
refuses), a batch job submitted through the gateway (the simulator holds every batch open until
the end: it stays in progress through every kill), and a few questions asked so that their
answers are in the cache. Then 32 concurrent clients keep asking (mostly questions never asked
before, so every request goes through the classifier, the router and the providers; every
fourth an earlier one, a cache hit) while each target is killed with SIGKILL, one at a time:
the next kill comes `settle_s` after the previous target answers its health check again.

Per kill: the requests that failed in its window (from the kill to the next kill, by the time
they ended), by status code, and those that started after the target was healthy again (what a
slow reconnect costs); the seconds until the target answered its health check again (gRPC
health; Redis: PING), and until the last failure of the window (after it, every request of the
window succeeded); the answers given without the cache (the cache or Redis away).
At the end: the batch job is still there, and ends with every item answered once the simulator
lets it; the budget's spend counter read after Redis came back is at least what the gateway had
billed (answers received) before Redis was killed; the questions asked before the chaos are
exact cache hits after the Redis kill; and every target was started again by the supervisor.

The load uses the bench's plain gateway client (`GatewayClient`: gRPC's default reconnect
backoff, not the mesh's one-second cap), as an application would.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.gateway.limits import Limiter, Limits
from costmesh.tooling.bench.load import load_prompts
from costmesh.tooling.launcher import Mesh, start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

TARGETS = ("cache", "classifier", "router", "providers", "batches", "gateway", "redis")
CONCURRENCY = 32
TENANT = "chaos"
BUDGET_USD_PER_DAY = 1000.0  # far above the run's spend: the budget is counted, never refuses
MAX_TOKENS = 128
CALL_TIMEOUT_S = 30.0
SETTLE_S, QUICK_SETTLE_S = 10.0, 4.0  # load after a target is healthy again, before the next kill
BASELINE_S, QUICK_BASELINE_S = 10.0, 3.0
BACK_TIMEOUT_S = 120.0  # a target not healthy again by then counts as not back
REPEAT_EVERY = 4  # every fourth request asks an earlier question again (a cache hit)
PROBES = 8  # questions asked before the chaos, asked again after the Redis kill
BATCH_ITEMS = 4
BATCH_LATENCY_S = 3600.0  # the simulator holds a batch open this long (its clock is moved at the end)
STARTUP_S = 400.0


@dataclass
class Outcome:
    started: float  # seconds since the load began
    ended: float
    code: str = ""  # "" answered, else the status code's name
    micro_usd: int = 0
    uncached: bool = False  # answered without the cache (cache or Redis away)


@dataclass
class Load:
    """32 workers asking until stopped; every call's outcome, on one clock (`now`)."""

    client: GatewayClient
    prompts: list[str]
    concurrency: int
    outcomes: list[Outcome] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    _calls: int = 0
    _fresh: int = 0  # prompts asked so far (cycling when they run out)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _prompt(self, rng: random.Random) -> str:
        self._calls += 1
        if self._calls % REPEAT_EVERY == 0 and self._fresh > 2 * self.concurrency:
            # asked before (and not among the last ones, still in flight): a hit once stored
            return self.prompts[rng.randrange(self._fresh - self.concurrency) % len(self.prompts)]
        self._fresh += 1
        return self.prompts[(self._fresh - 1) % len(self.prompts)]

    async def _worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            request = build_request(self._prompt(rng), tenant=TENANT, max_tokens=MAX_TOKENS)
            started = self.now()
            try:
                response = await self.client.complete(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                self.outcomes.append(Outcome(started, self.now(), code.name if code else type(exc).__name__))
                await asyncio.sleep(0.05)  # a failing client does not spin
            except Exception as exc:  # noqa: BLE001 - a failed call of any kind is counted, never fatal
                self.outcomes.append(Outcome(started, self.now(), type(exc).__name__))
                await asyncio.sleep(0.05)
            else:
                self.outcomes.append(Outcome(started, self.now(), micro_usd=response.cost.total_micro_usd,
                                             uncached=response.cache_status == gw.CACHE_STATUS_UNAVAILABLE))

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(self.concurrency)))

    def stop(self) -> None:
        self._stop.set()


# -- the targets ---------------------------------------------------------------------------------


def _pid(mesh: Mesh, target: str) -> int | None:
    return mesh.redis.pid if target == "redis" else mesh.processes[target].popen.pid


def _restarts(mesh: Mesh, target: str) -> int:
    return mesh.redis.restarts if target == "redis" else mesh.processes[target].restarts


def _healthy(mesh: Mesh, target: str) -> bool:
    """On a fresh connection each time, so a probe's own reconnect backoff never delays it."""
    if target == "redis":
        try:
            return bool(redis.Redis.from_url(mesh.redis.url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except RedisError:
            return False
    with grpc.insecure_channel(mesh.processes[target].address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def _kill_and_wait(mesh: Mesh, target: str, clock) -> dict:
    """SIGKILL the target; return when it was killed and when the supervisor had it healthy again."""
    before, pid = _restarts(mesh, target), _pid(mesh, target)
    killed = clock()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + BACK_TIMEOUT_S
    while time.monotonic() < deadline:
        if _restarts(mesh, target) > before and _healthy(mesh, target):
            return {"killed": killed, "healthy": clock(), "pid": pid, "new_pid": _pid(mesh, target)}
        time.sleep(0.05)
    return {"killed": killed, "healthy": None, "pid": pid, "new_pid": None}


# -- budget, batch, cache probes ------------------------------------------------------------------


async def _spent(limiter: Limiter, attempts: int = 40) -> int | None:
    """The tenant's spend today (micro-USD, reservations in flight included), Redis permitting."""
    for _ in range(attempts):
        try:
            return (await limiter.status(TENANT)).spent_today_micro_usd
        except RedisError:
            await asyncio.sleep(0.25)
    return None


async def _get_batch(stub, batch_id: str, auth) -> gw.Batch | None:
    for _ in range(40):  # the gateway or the batches service may be on its way back
        try:
            return (await stub.GetBatch(gw.GetBatchRequest(batch_id=batch_id, tenant_id=TENANT), metadata=auth,
                                        timeout=5)).batch
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.5)
    return None


async def _ask(client: GatewayClient, prompt: str) -> gw.CompleteResponse | None:
    """Ask until the answer comes with the cache up (its cool-down after Redis errors), ~15 s at most."""
    response = None
    for _ in range(30):
        try:
            response = await client.complete(build_request(prompt, tenant=TENANT, max_tokens=MAX_TOKENS),
                                             timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            response = None
        if response is not None and response.cache_status != gw.CACHE_STATUS_UNAVAILABLE:
            return response
        await asyncio.sleep(0.5)
    return response


async def _stores_settled(client: GatewayClient, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (await client.stats(TENANT)).cache_stores_pending:
        await asyncio.sleep(0.2)


def _advance_simulator_clock(url: str, seconds: float) -> None:
    request = urllib.request.Request(f"{url}/_sim/clock", data=json.dumps({"advance_s": seconds}).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


# -- the run ----------------------------------------------------------------------------------------


def window(outcomes: list[Outcome], start: float, end: float, healthy: float | None) -> dict:
    """What the requests that ended in [start, end) did."""
    inside = [o for o in outcomes if start <= o.ended < end]
    failed = [o for o in inside if o.code]
    return {
        "requests": len(inside),
        "failed": len(failed),
        "failed_by_code": dict(Counter(o.code for o in failed)),
        "failed_after_healthy": sum(healthy is not None and o.started >= healthy for o in failed),
        "ok_again_s": round(max(o.ended for o in failed) - start, 2) if failed else 0.0,
        "answered_uncached": sum(o.uncached for o in inside if not o.code),
    }


async def chaos(mesh: Mesh, targets: tuple[str, ...], *, concurrency: int = CONCURRENCY, settle_s: float = SETTLE_S,
                baseline_s: float = BASELINE_S, prompts: list[str] | None = None) -> dict:
    prompts = prompts or load_prompts()
    probes, batch_prompts = prompts[:PROBES], prompts[PROBES:PROBES + BATCH_ITEMS]
    prompts = prompts[PROBES + BATCH_ITEMS:]
    key = mesh.api_key(TENANT)
    auth = (("authorization", f"Bearer {key}"),)
    redis_client = AsyncRedis.from_url(mesh.env["REDIS_URL"])
    limiter = Limiter(redis_client, fail_open=False)
    budget = Limits(usd_per_day=BUDGET_USD_PER_DAY)
    await limiter.set(TENANT, budget)  # as `costmesh limits set --tenant chaos --usd-per-day 1000`
    result: dict = {"targets": list(targets), "concurrency": concurrency, "settle_s": settle_s}
    try:
        async with GatewayClient(mesh.gateway, api_key=key) as client, \
                grpc.aio.insecure_channel(mesh.gateway) as batch_channel:
            batches = gateway_pb2_grpc.BatchServiceStub(batch_channel)
            for prompt in probes:  # their answers in the cache before the chaos
                await client.complete(build_request(prompt, tenant=TENANT, max_tokens=MAX_TOKENS),
                                      timeout=CALL_TIMEOUT_S)
            await _stores_settled(client)
            items = []
            for i, prompt in enumerate(batch_prompts):
                item = build_request(prompt, tenant=TENANT, max_tokens=MAX_TOKENS)
                item.request_id = f"chaos-batch-{i}"
                items.append(item)
            batch = (await batches.SubmitBatch(gw.SubmitBatchRequest(tenant_id=TENANT, requests=items),
                                               metadata=auth, timeout=CALL_TIMEOUT_S)).batch

            load = Load(client, prompts, concurrency)
            running = asyncio.create_task(load.run())
            await asyncio.sleep(baseline_s)
            kills: list[dict] = []
            budget_check: dict = {}
            batch_states: list[str] = []
            for target in targets:
                if target == "redis" and mesh.redis is None:
                    kills.append({"target": target, "skipped": "no embedded Redis (REDIS_URL given)"})
                    continue
                if target == "redis":
                    budget_check["spent_before_kill_micro_usd"] = await _spent(limiter)
                    billed_at = load.now()
                kill = await asyncio.to_thread(_kill_and_wait, mesh, target, load.now)
                if target == "redis":
                    budget_check["billed_before_kill_micro_usd"] = sum(
                        o.micro_usd for o in load.outcomes if not o.code and o.ended < billed_at)
                    budget_check["spent_after_restart_micro_usd"] = await _spent(limiter)
                    budget_check["limits_kept"] = await limiter.get(TENANT) == budget
                kill["target"] = target
                kills.append(kill)
                await asyncio.sleep(settle_s)
                state = await _get_batch(batches, batch.batch_id, auth)
                batch_states.append(gw.BatchStatus.Name(state.status) if state else "MISSING")
            load.stop()
            await running
            end = load.now()

            real = [k for k in kills if "skipped" not in k]
            for i, kill in enumerate(real):
                until = real[i + 1]["killed"] if i + 1 < len(real) else end
                kill.update(window(load.outcomes, kill["killed"], until, kill["healthy"]))
                kill["back"] = kill["healthy"] is not None
                kill["healthy_s"] = round(kill["healthy"] - kill["killed"], 2) if kill["back"] else None
                kill["restarts"] = _restarts(mesh, kill["target"])
                kill["killed_at_s"] = round(kill["killed"], 2)
                for name in ("killed", "healthy"):
                    del kill[name]
            first_kill = real[0]["killed_at_s"] if real else end
            result["baseline"] = window(load.outcomes, 0.0, first_kill, None)
            result["kills"] = kills

            # The cache: the questions asked before the chaos, asked again (after the Redis kill).
            again = [await _ask(client, prompt) for prompt in probes]
            result["cache"] = {"probes": len(probes),
                               "exact_hits": sum(r is not None and r.cache_status == gw.CACHE_STATUS_EXACT_HIT
                                                 for r in again)}

            # The batch: in progress through every kill, then let end.
            seen = await _get_batch(batches, batch.batch_id, auth)
            await asyncio.to_thread(_advance_simulator_clock, mesh.simulator_url, BATCH_LATENCY_S)
            deadline = time.monotonic() + 60
            while seen is not None and seen.status != gw.BATCH_STATUS_ENDED and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                seen = await _get_batch(batches, batch.batch_id, auth)
            result["batch"] = {"items": BATCH_ITEMS, "status_after_each_kill": batch_states,
                               "status_at_end": gw.BatchStatus.Name(seen.status) if seen else "MISSING",
                               "succeeded": seen.counts.succeeded if seen else 0}

            answered = [o for o in load.outcomes if not o.code]
            budget_check.update(billed_total_micro_usd=sum(o.micro_usd for o in answered),
                                spent_at_end_micro_usd=await _spent(limiter))
            if "billed_before_kill_micro_usd" in budget_check:
                after = budget_check["spent_after_restart_micro_usd"]
                budget_check["kept"] = (after is not None and after >= budget_check["billed_before_kill_micro_usd"]
                                        and budget_check["limits_kept"])
            result["budget"] = budget_check
            result.update(requests=len(load.outcomes), answered=len(answered),
                          failed=len(load.outcomes) - len(answered), load_s=round(end, 1),
                          rps=round(len(answered) / end, 1) if end else 0.0)
    finally:
        await redis_client.aclose()
    result["all_back"] = all(k.get("back", True) for k in result.get("kills", ()))
    return result


def mesh_env() -> dict[str, str]:
    """The mesh's settings: its own embedded Redis (the one killed), the simulator holding batches open."""
    return {"COSTMESH_LOG_LEVEL": "warning", "REDIS_URL": "", "SIM_BATCH_LATENCY_S": str(BATCH_LATENCY_S),
            "COSTMESH_BATCH_POLL_S": "1"}


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-chaos-") as run_dir, \
            start_mesh(run_dir, mesh_env(), startup_timeout_s=STARTUP_S) as mesh:
        return asyncio.run(chaos(mesh, TARGETS, settle_s=QUICK_SETTLE_S if quick else SETTLE_S,
                                 baseline_s=QUICK_BASELINE_S if quick else BASELINE_S))


def table(result: dict) -> str:
    lines = [f"kill -9 under load: {result['concurrency']} concurrent, {result['requests']} requests in "
             f"{result['load_s']:.0f} s ({result['rps']:.1f} answered/s), {result['failed']} failed; "
             f"next kill {result['settle_s']:.0f} s after the target is healthy again",
             f"  {'killed':<12}{'back':>6}{'healthy s':>11}{'requests':>10}{'failed':>8}{'after healthy':>15}"
             f"{'ok again s':>12}{'uncached':>10}  failed by code"]
    base = result["baseline"]
    lines.append(f"  {'(none)':<12}{'':>6}{'':>11}{base['requests']:>10}{base['failed']:>8}{'':>15}{'':>12}"
                 f"{base['answered_uncached']:>10}  {base['failed_by_code'] or '-'}")
    for k in result["kills"]:
        if "skipped" in k:
            lines.append(f"  {k['target']:<12}skipped: {k['skipped']}")
            continue
        healthy = f"{k['healthy_s']:.1f}" if k["healthy_s"] is not None else "never"
        lines.append(f"  {k['target']:<12}{'yes' if k['back'] else 'NO':>6}{healthy:>11}{k['requests']:>10}"
                     f"{k['failed']:>8}{k['failed_after_healthy']:>15}{k['ok_again_s']:>12.1f}"
                     f"{k['answered_uncached']:>10}  {k['failed_by_code'] or '-'}")
    batch, budget, cache = result["batch"], result["budget"], result["cache"]
    lines.append(f"  batch job: {batch['status_at_end'].removeprefix('BATCH_STATUS_').lower()}, "
                 f"{batch['succeeded']}/{batch['items']} succeeded; after each kill: "
                 + ", ".join(s.removeprefix("BATCH_STATUS_").lower() for s in batch["status_after_each_kill"]))
    if "billed_before_kill_micro_usd" in budget:
        lines.append(f"  budget counter: billed before the Redis kill {budget['billed_before_kill_micro_usd']} µUSD, "
                     f"counter before {budget['spent_before_kill_micro_usd']}, after the restart "
                     f"{budget['spent_after_restart_micro_usd']} ({'kept' if budget['kept'] else 'LOST'}, limits "
                     f"{'kept' if budget['limits_kept'] else 'LOST'}); billed in all "
                     f"{budget['billed_total_micro_usd']}, counter at the end {budget['spent_at_end_micro_usd']}")
    lines.append(f"  cache: {cache['exact_hits']}/{cache['probes']} questions asked before the chaos are exact hits "
                 "after it")
    return "\n".join(lines)
