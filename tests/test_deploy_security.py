"""Deployment files and #19: every service gets the mesh secret (compose and Kubernetes), only the
gateway faces the outside, NetworkPolicies admit exactly the mesh's call graph, and the metrics
port is off the public Service. Offline, like tests/test_deploy.py, whose helpers these use."""

from __future__ import annotations

from pathlib import Path

from test_deploy import (
    GRPC_SERVICES,
    METRICS_PORT,
    compose_config,
    config_data,
    container_of,
    effective_env,
    mounts,
    objects_of,
    peer_variables,
    workloads,
)

SECRET_NAME = "costmesh-mesh-secret"


def test_compose_every_service_reads_the_mesh_secret_made_once():
    services = compose_config("gpu")["services"]
    maker = services["mesh-secret"]
    path = maker["command"][-1]
    assert maker["command"][:2] == ["costmesh", "mesh-secret"]
    assert (str(Path(path).parent), False) in mounts(maker)
    for name in GRPC_SERVICES:
        service = services[name]
        assert service["environment"]["COSTMESH_MESH_SECRET_FILE"] == path, name
        assert (str(Path(path).parent), True) in mounts(service), name  # read-only
        assert service["depends_on"]["mesh-secret"]["condition"] == "service_completed_successfully", name
        assert service["environment"].get("COSTMESH_MESH_AUTH", "on") != "off", name
    published = {name for name, s in services.items() if s.get("ports")} & set(GRPC_SERVICES)
    assert published == {"gateway"}  # the services behind it publish no port


def test_k8s_every_grpc_service_mounts_the_mesh_secret():
    deployments = workloads()
    for name in GRPC_SERVICES:
        container = container_of(deployments[name])
        env = effective_env(container)
        assert env.get("COSTMESH_MESH_AUTH", "on") != "off", name
        path = Path(env["COSTMESH_MESH_SECRET_FILE"])
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
        assert mount["readOnly"] is True, name
        volumes = {v["name"]: v for v in deployments[name]["spec"]["template"]["spec"]["volumes"]}
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == SECRET_NAME and not secret.get("optional"), name  # no secret: no start
        assert secret["defaultMode"] & 0o007 == 0, name  # not world-readable


def test_k8s_the_public_service_has_no_metrics_port():
    gateway = objects_of("Service")["gateway"]
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert {p["port"] for p in gateway["spec"]["ports"]} == {50051, 8080}


def _callers() -> dict[str, set[str]]:
    """Who dials whom, read from the Deployments' peer addresses (and the providers' upstreams)."""
    callers: dict[str, set[str]] = {}
    for name, deployment in workloads().items():
        env = effective_env(container_of(deployment))
        targets = list(peer_variables(env).values())
        if name == "providers":
            targets += [a for a in config_data()["COSTMESH_INFERENCE_ADDRS"].split(",") if a]
            targets.append(env["COSTMESH_SIMULATOR_URL"].removeprefix("http://"))
        for target in targets:
            host = target.removeprefix("dns:///").split(":")[0].split(".")[0]
            callers.setdefault(host, set()).add(name)
    return callers


def _selected(rule_from: list[dict]) -> set[str]:
    return {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rule_from}


def test_k8s_network_policies_admit_exactly_the_call_graph():
    policies = objects_of("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")

    callers = _callers()
    assert callers["cache"] == {"gateway", "batches"} and callers["providers"] == {"router", "batches"}
    ports = {**{name: port for name, (_, port) in GRPC_SERVICES.items()}, "simulator": 8089}
    for name, expected in callers.items():
        spec = policies[f"{name}-ingress"]["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        (rule,) = spec["ingress"]
        assert _selected(rule["from"]) == expected, name
        assert [p["port"] for p in rule["ports"]] == [ports[name]], name

    gateway = policies["gateway-ingress"]["spec"]
    (rule,) = gateway["ingress"]
    assert "from" not in rule  # the public API: from anywhere
    assert sorted(p["port"] for p in rule["ports"]) == [8080, 50051]  # not the metrics port

    metrics = policies["metrics-ingress"]["spec"]
    assert metrics["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "costmesh"}
    (rule,) = metrics["ingress"]
    assert rule["from"] == [{"namespaceSelector": {}}]  # pods of the cluster only, not the internet
    assert [p["port"] for p in rule["ports"]] == [METRICS_PORT]

    covered = {name for name in workloads() if f"{name}-ingress" in policies}
    assert covered == set(workloads())  # every workload has its policy
