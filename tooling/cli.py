"""The `costmesh` command. Each subcommand lives in its own module, which provides
`add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from costmesh.errors import CostmeshError

# name -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("costmesh.tooling.demo", "start the mesh, send a few hundred real requests, print the savings"),
    "serve": ("costmesh.tooling.serve", "start the mesh on this machine until Ctrl-C"),
    "bench": ("costmesh.tooling.bench.runner", "run the benchmark sections, write bench-results.json"),
    "eval": ("costmesh.tooling.eval.cli", "evaluate a layer on a data file (cache, router)"),
    "train-verifier": ("costmesh.tooling.verification.train",
                       "train the cache verifier on paraphrase pairs + traps, calibrate, save"),
    "train-router": ("costmesh.tooling.routing.train_cli",
                     "train the learned router on routing books, calibrate, save"),
    "keys": ("costmesh.gateway.auth_cli",
             "create, revoke and list the gateway's API keys: per tenant, or admin (the dashboard)"),
    "limits": ("costmesh.gateway.limits_cli",
               "set and show per-tenant and per-key limits (requests, tokens per minute, USD per day, month), "
               "enforced by every gateway on the same Redis"),
    "mesh-secret": ("costmesh.tooling.mesh_secret_cli",
                    "make the secret the services sign their calls with; print a service token"),
    "tls-cert": ("costmesh.tooling.tls_cert",
                 "make a private CA and a gateway certificate (TLS without a public CA)"),
    "report": ("costmesh.tooling.report.command",
               "savings by layer over a period of cost records: table, HTML page, PNG charts"),
    "settings-doc": ("costmesh.tooling.settings_doc",
                     "print every environment variable the services read (the README's Configuration table)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="costmesh", description="costmesh: cut what LLM calls cost.")
    commands = parser.add_subparsers(dest="command", required=True)
    # Only the named command's module is imported: a service's image has what its own commands need
    # (the gateway's: keys, limits, mesh-secret, tls-cert, report), not the training or benchmark stack.
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    try:
        return module.run(args)
    except CostmeshError as exc:
        print(f"costmesh {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
