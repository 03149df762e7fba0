PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')

.PHONY: venv proto demo test bench clean

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

proto: venv
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	find costmesh/api -type d -exec touch {}/__init__.py \;

demo: venv
	$(PY) -m costmesh.cli demo

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) -m costmesh.cli bench

clean:
	rm -rf $(VENV) build *.egg-info bench-results.json
