"""Packaging: `pip install costmesh[client]` gets the Python clients without the serving stack.

The wheel's metadata is built from pyproject.toml (setuptools, as `pip install` does), the
client extra's requirements are followed through every installed distribution's own metadata,
and `costmesh.client` is imported in a fresh interpreter where the heavy packages cannot be
imported at all: a hidden import of torch, numpy or Redis from the client fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from distributions import closure

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "sentence-transformers", "onnxruntime", "onnx", "transformers", "redis", "redisvl", "numpy"}
CLIENT_DIRECT = {"grpcio", "grpcio-status", "protobuf"}
# Importable modules the client must do without: the heavy ones, and what only the services use.
BLOCKED_MODULES = ("torch", "onnxruntime", "onnx", "redis", "redisvl", "sentence_transformers", "transformers",
                   "numpy", "opentelemetry", "structlog", "prometheus_client", "aiohttp", "anthropic", "openai",
                   "tiktoken", "grpc_health", "grpc_reflection", "jsonschema", "pydantic", "pydantic_settings")


@pytest.fixture(scope="module")
def wheel_requires(tmp_path_factory) -> list[Requirement]:
    """Requires-Dist of the wheel setuptools builds from pyproject.toml (metadata only)."""
    tree = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, tree / name)
    for package in ("costmesh", "services", "gateway", "tooling"):  # the metadata needs no code
        (tree / package).mkdir()
        (tree / package / "__init__.py").write_text("")
    out = tmp_path_factory.mktemp("metadata")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; "
                               "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))", str(out)],
        cwd=tree, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dist_info = out / result.stdout.strip().splitlines()[-1]
    message = metadata.PathDistribution(dist_info).metadata
    assert message["Name"] == "costmesh"
    return [Requirement(line) for line in message.get_all("Requires-Dist") or []]


def extra_requirements(requires: list[Requirement], extra: str, seen: set[str] | None = None) -> set[str]:
    """Names costmesh[extra] asks for directly: the base, the extra, and the extras it names of costmesh itself."""
    seen = set() if seen is None else seen
    seen.add(extra)
    names = set()
    for req in requires:
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        if canonicalize_name(req.name) == "costmesh":
            for inner in req.extras - seen:
                names |= extra_requirements(requires, inner, seen)
            continue
        names.add(canonicalize_name(req.name))
    return names



def test_the_client_extra_installs_no_serving_stack(wheel_requires):
    client = extra_requirements(wheel_requires, "client")
    assert client == CLIENT_DIRECT
    pulled = closure(client)
    assert not pulled & HEAVY, sorted(pulled & HEAVY)
    assert pulled <= {*CLIENT_DIRECT, "googleapis-common-protos", "typing-extensions"}, sorted(pulled)


def test_serve_has_every_service_dependency_and_dev_includes_it(wheel_requires):
    base = extra_requirements(wheel_requires, "")
    serve = extra_requirements(wheel_requires, "serve")
    assert base == {"grpcio", "protobuf"}  # the generated API alone
    assert HEAVY - {"transformers"} <= serve  # the check above is not vacuous: serving pulls them
    assert {"grpcio-health-checking", "aiohttp", "opentelemetry-sdk", "anthropic", "openai", "structlog"} <= serve
    assert "transformers" in closure(serve)
    dev = extra_requirements(wheel_requires, "dev")
    assert serve <= dev and {"pytest", "ruff", "import-linter"} <= dev


def test_make_venv_and_the_image_install_the_serving_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "serve" in project["optional-dependencies"]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -e '.[serve,dev]'" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()  # the app image; each service's: tests/test_packaging_extras.py
    assert "python /tmp/requirements.py /tmp/pyproject.toml /tmp/requirements" in dockerfile
    assert "pip install -r /tmp/requirements/serve.txt" in dockerfile


def test_the_client_imports_with_the_serving_stack_unimportable(tmp_path):
    """A meta path finder refuses the heavy modules before `costmesh.client` is imported."""
    code = textwrap.dedent(f"""
        import sys

        BLOCKED = {BLOCKED_MODULES!r}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked by the test: {{name}}")
                return None

        sys.meta_path.insert(0, Blocker())
        try:
            import numpy  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker does not block")

        import costmesh.client
        from costmesh.client import AsyncClient, Client, CompletionRequest

        client = Client("127.0.0.1:9", api_key="cm_test", timeout_s=1.0)  # channels connect lazily
        client.close()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok", costmesh.client.__name__, AsyncClient.__name__, CompletionRequest.__name__)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok costmesh.client")
