#!/usr/bin/env bash
# lint-imports over the installed layout: services/, gateway/ and tooling/ are mapped into the
# costmesh package at install time, so the import graph is built from a copy laid out that way.
set -euo pipefail
cd "$(dirname "$0")/.."
root=build/lint-imports
rm -rf "$root" && mkdir -p "$root"
cp -r costmesh "$root/costmesh"
for folder in services gateway tooling; do cp -r "$folder" "$root/costmesh/$folder"; done
find "$root" -name __pycache__ -prune -exec rm -rf {} +
cd "$root"
PYTHONPATH=. "${LINT_IMPORTS:-lint-imports}" --no-cache --config ../../pyproject.toml
