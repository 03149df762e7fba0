"""Runs the benchmark sections, prints a table per section, writes bench-results.json."""

from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path

SECTIONS = {
    "gateway": "costmesh.tooling.bench.gateway",
    "cache": "costmesh.tooling.bench.cache",
    "providers": "costmesh.tooling.bench.providers",
    "gateway_http": "costmesh.tooling.bench.gateway_http",
    "capacity": "costmesh.tooling.bench.capacity",
    "inference": "costmesh.tooling.bench.inference",
    "load": "costmesh.tooling.bench.load",
    "agents": "costmesh.tooling.bench.agents",
    "chaos": "costmesh.tooling.bench.chaos",
}


def add_arguments(parser) -> None:
    parser.add_argument("--output", default="bench-results.json")
    parser.add_argument("--section", action="append", help=f"run only these sections (of {sorted(SECTIONS)})")
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke run")
    parser.add_argument("--book", help="replay this routing book through the mesh instead of the sections")


def run(args) -> int:
    if args.book:
        from costmesh.tooling.bench.replay import run_book

        return run_book(args.book, args.output, quick=args.quick)
    return run_bench(args.output, args.section, quick=args.quick)


def run_bench(output: str, only: list[str] | None = None, *, quick: bool = False) -> int:
    names = only or list(SECTIONS)
    unknown = sorted(set(names) - SECTIONS.keys())
    if unknown:
        raise SystemExit(f"unknown bench sections {unknown}; known: {sorted(SECTIONS)}")
    path = Path(output)
    results = json.loads(path.read_text()) if path.exists() else {}
    results["_meta"] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in names:
        module = importlib.import_module(SECTIONS[name])
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        results[name] = module.run(quick=quick)
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(module.table(results[name]), flush=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return 0
