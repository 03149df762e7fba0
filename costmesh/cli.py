"""The `costmesh` command: demo, bench, serve."""

from __future__ import annotations

import argparse
import sys

from costmesh.errors import CostmeshError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="costmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="start the mesh, send a few hundred real requests, print savings")
    demo.add_argument("--requests", type=int, default=300)
    demo.add_argument("--concurrency", type=int, default=8)

    bench = commands.add_parser("bench", help="run the benchmark sections, write bench-results.json")
    bench.add_argument("--output", default="bench-results.json")
    bench.add_argument("--section", action="append", help="run only these sections")
    bench.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")

    commands.add_parser("serve", help="start the mesh and keep it running until Ctrl-C")

    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from costmesh.demo import run_demo

            return run_demo(args.requests, args.concurrency)
        if args.command == "bench":
            from costmesh.bench.runner import run_bench

            return run_bench(args.output, args.section, quick=args.quick)
        if args.command == "serve":
            from costmesh.serve import serve_forever

            return serve_forever()
    except CostmeshError as exc:
        print(f"costmesh {args.command}: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
