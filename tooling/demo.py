"""`costmesh demo`: the whole mesh as processes, a few hundred real requests, a savings table."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request
from costmesh.tooling.workload import DemoRequest, demo_mix


async def _send_all(address: str, mix: list[DemoRequest], concurrency: int,
                    api_key: str) -> list[tuple[DemoRequest, gw.CompleteResponse]]:
    results: list[tuple[DemoRequest, gw.CompleteResponse]] = []
    done = 0
    async with GatewayClient(address, api_key=api_key) as client:
        # Requests go in waves so that repeats and paraphrases arrive after the question they repeat.
        for start in range(0, len(mix), concurrency):
            wave = mix[start : start + concurrency]
            responses = await asyncio.gather(
                *(client.complete(build_request(r.prompt, system=r.system)) for r in wave)
            )
            results.extend(zip(wave, responses))
            done += len(wave)
            print(f"\r  {done}/{len(mix)} requests", end="", flush=True)
    print()
    return results


def format_report(results: list[tuple[DemoRequest, gw.CompleteResponse]], elapsed_s: float) -> str:
    status = Counter(gw.CacheStatus.Name(r.cache_status).removeprefix("CACHE_STATUS_").lower() for _, r in results)
    tiers = Counter(common.Tier.Name(r.tier).removeprefix("TIER_").lower() for _, r in results if not r.cached)
    models = Counter(r.model for _, r in results if not r.cached)
    cost = sum(r.cost.total_usd for _, r in results)
    baseline = sum(r.baseline_cost_usd for _, r in results)
    layers = {
        name: sum(getattr(r.savings, f"{name}_usd") for _, r in results)
        for name in ("cache", "routing", "prompt_caching", "batch", "inference")
    }
    by_kind = Counter(d.kind for d, _ in results)
    hits_by_kind = Counter(d.kind for d, r in results if r.cached)
    lines = [
        f"requests            {len(results)}  in {elapsed_s:.1f} s",
        "  by kind           " + ", ".join(f"{k} {by_kind[k]} ({hits_by_kind[k]} from cache)" for k in sorted(by_kind)),
        "cache               " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())),
        "tier mix (misses)   " + ", ".join(f"{k} {v}" for k, v in sorted(tiers.items())),
        "models (misses)     " + ", ".join(f"{k} {v}" for k, v in models.most_common()),
        "",
        f"{'':22}{'USD':>12}{'share of baseline':>20}",
        f"{'baseline (premium, no cache)':<30}{baseline:>12.6f}{1:>12.1%}",
        f"{'costmesh':<30}{cost:>12.6f}{(cost / baseline if baseline else 0):>12.1%}",
        f"{'saving':<30}{baseline - cost:>12.6f}{((baseline - cost) / baseline if baseline else 0):>12.1%}",
    ]
    for name, value in layers.items():
        lines.append(f"{'  by ' + name.replace('_', ' '):<30}{value:>12.6f}"
                     f"{(value / baseline if baseline else 0):>12.1%}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=300, help="how many requests to send (default 300)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--records-dir", default=None,
                        help="where the gateway keeps its cost records "
                             "(default $COSTMESH_RECORDS_DIR or ./out/costmesh-records)")
    parser.add_argument("--report-dir", default="out/costmesh-report",
                        help="where the savings report (HTML page, PNG charts, table) is written")


def run(args) -> int:
    return run_demo(args.requests, args.concurrency, records_dir=args.records_dir, report_dir=args.report_dir)


def run_demo(total: int = 300, concurrency: int = 8, *, records_dir: str | None = None,
             report_dir: str = "out/costmesh-report") -> int:
    from costmesh.tooling.report.command import DEFAULT_RECORDS_DIR, write_report

    mix = demo_mix(total)
    # This run's records in a directory of their own (`costmesh report` on the parent reads every run).
    root = Path(records_dir or os.environ.get("COSTMESH_RECORDS_DIR") or DEFAULT_RECORDS_DIR).resolve()
    records = root / f"demo-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    print("costmesh demo: starting the mesh (embedded Redis, simulator, 5 services) ...")
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="costmesh-demo-") as run_dir, \
            start_mesh(run_dir, {"COSTMESH_RECORDS_DIR": str(records)}) as mesh:
        print(f"  gateway on {mesh.gateway}; sending {len(mix)} requests from the routing books and Quora pairs")
        started = time.perf_counter()
        results = asyncio.run(_send_all(mesh.gateway, mix, concurrency, mesh.api_key("demo")))
        print(format_report(results, time.perf_counter() - started))
    print("stopped everything the demo started.")
    # The savings report of this run, from the cost records the gateway wrote.
    report = write_report(records, report_dir, began, time.time() + 1)
    print(f"\nsavings report of this run: {Path(report.html_path).resolve()}")
    print(f"  charts: {', '.join(p.name for p in report.charts)}; cost records kept in {records}")
    print(f"  any period later: costmesh report --records-dir {root} --since 24h")
    return 0
