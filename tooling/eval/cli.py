"""`costmesh eval <layer>`: each layer's evaluation lives in its own module with
`add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib

# layer -> (module, help)
LAYERS: dict[str, tuple[str, str]] = {
    "cache": ("costmesh.tooling.eval.cache", "cache precision/recall/false hits on a pairs file, vs cosine baselines"),
    "router": ("costmesh.tooling.eval.router",
               "router metrics on a routing book (premium share at 95%%, APGR, cascade)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    layers = parser.add_subparsers(dest="layer", required=True)
    for name, (module_name, help_text) in LAYERS.items():
        module = importlib.import_module(module_name)
        sub = layers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_eval_module=module)


def run(args: argparse.Namespace) -> int:
    return args._eval_module.run(args)
