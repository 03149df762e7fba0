"""Starts the whole mesh on one machine, each service its own process (demo, bench, e2e tests).

Embedded Redis (unless REDIS_URL is given), the simulator (unless real provider keys are
configured and no simulator is wanted), then cache, classifier, providers, router, batches, gateway,
each on a free loopback port, each waited for through the standard gRPC health service.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.errors import ConfigError, Unavailable

SERVICES = (
    # name, module, peers it needs
    ("cache", "costmesh.services.cache", ()),
    ("classifier", "costmesh.services.classifier", ()),
    ("providers", "costmesh.services.providers", ()),
    ("router", "costmesh.services.router", ("providers",)),
    ("batches", "costmesh.services.batches", ("cache", "classifier", "router", "providers")),
    ("gateway", "costmesh.gateway", ("cache", "classifier", "router", "batches")),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    address: str
    log_path: Path
    metrics_port: int | None = None  # its Prometheus endpoint, when metrics are on

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Mesh:
    """A running mesh. `gateway` is the address clients call."""

    run_dir: Path
    env: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    redis: object | None = None
    simulator_url: str | None = None
    http_url: str | None = None  # the gateway's OpenAI-compatible API, e.g. http://127.0.0.1:PORT/v1
    _keys: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.processes["gateway"].address

    def api_key(self, tenant: str = "demo") -> str:
        """A gateway API key for `tenant`, minted into the mesh's key file on first use."""
        if tenant not in self._keys:
            from costmesh.gateway.auth import KeyStore

            self._keys[tenant], _ = KeyStore(self.env["COSTMESH_API_KEYS_FILE"]).create(tenant, "launcher")
        return self._keys[tenant]

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> "Mesh":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_mesh(
    run_dir: str | os.PathLike,
    extra_env: dict[str, str] | None = None,
    *,
    use_simulator: bool | None = None,
    startup_timeout_s: float = 300.0,
    gateway_port: int | None = None,
) -> Mesh:
    """Start everything and return once every service reports SERVING. Each service gets a free
    loopback port, except the gateway when `gateway_port` pins it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("PYTHONUNBUFFERED", "1")
    mesh = Mesh(run_dir, env)
    try:
        if not env.get("REDIS_URL"):
            from costmesh.tooling.redis_embedded import EmbeddedRedis

            mesh.redis = EmbeddedRedis()
            mesh.redis.start()
            env["REDIS_URL"] = mesh.redis.url
        if use_simulator is None:
            use_simulator = not (env.get("ANTHROPIC_API_KEY") or env.get("OPENAI_API_KEY")) or bool(
                env.get("COSTMESH_SIMULATOR_URL")
            )
        if use_simulator and not env.get("COSTMESH_SIMULATOR_URL"):
            port = free_port()
            sim_env = {**env, "SIM_HOST": "127.0.0.1", "SIM_PORT": str(port)}
            mesh.processes["simulator"] = _spawn("simulator", "costmesh.services.simulator", sim_env, run_dir,
                                                 f"127.0.0.1:{port}")
            env["COSTMESH_SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
            _wait_http(mesh.processes["simulator"], f"http://127.0.0.1:{port}/_sim/stats", startup_timeout_s)
        mesh.simulator_url = env.get("COSTMESH_SIMULATOR_URL")
        # Authentication is always on: unless the caller brings its own key file, the mesh gets
        # a fresh one in its run directory, and `mesh.api_key(tenant)` mints keys into it.
        env.setdefault("COSTMESH_API_KEYS_FILE", str(run_dir / "api-keys.json"))
        from costmesh.gateway.auth import KeyStore

        KeyStore(env["COSTMESH_API_KEYS_FILE"]).ensure_file()
        if not env.get("COSTMESH_HTTP_PORT"):
            env["COSTMESH_HTTP_PORT"] = str(free_port())
        if env["COSTMESH_HTTP_PORT"] != "0":
            mesh.http_url = f"http://127.0.0.1:{env['COSTMESH_HTTP_PORT']}/v1"

        addresses: dict[str, str] = {}
        for name, module, peers in SERVICES:
            port = gateway_port if name == "gateway" and gateway_port else free_port()
            addresses[name] = f"127.0.0.1:{port}"
            service_env = {**env, "COSTMESH_HOST": "127.0.0.1", "COSTMESH_PORT": str(port)}
            for peer in peers:
                service_env[f"COSTMESH_{peer.upper()}_ADDR"] = addresses[peer]
            if env.get("COSTMESH_METRICS_PORT"):  # metrics wanted: one endpoint per process, never a shared port
                service_env["COSTMESH_METRICS_PORT"] = str(free_port())
            workers = env.get(f"COSTMESH_{name.upper()}_WORKERS")  # several processes on the service's port
            if workers:
                service_env["COSTMESH_WORKERS"] = workers
            mesh.processes[name] = _spawn(name, module, service_env, run_dir, addresses[name])
            if env.get("COSTMESH_METRICS_PORT"):
                mesh.processes[name].metrics_port = int(service_env["COSTMESH_METRICS_PORT"])
        for process in mesh.processes.values():
            if process.name != "simulator":
                _wait_healthy(process, startup_timeout_s)
    except BaseException:
        mesh.stop()
        raise
    return mesh


def _spawn(name: str, module: str, env: dict[str, str], run_dir: Path, address: str) -> Process:
    log_path = run_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
    popen = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    return Process(name, popen, address, log_path)


def _check_alive(process: Process) -> None:
    if process.popen.poll() is not None:
        tail = process.log_path.read_text(errors="replace")[-3000:]
        raise ConfigError(f"{process.name} exited with code {process.popen.returncode}:\n{tail}")


def _wait_healthy(process: Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(process.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            _check_alive(process)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise Unavailable(f"{process.name} did not become healthy within {timeout_s:.0f} s (log: {process.log_path})")


def _wait_http(process: Process, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(process)
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise Unavailable(f"{process.name} did not answer at {url} within {timeout_s:.0f} s (log: {process.log_path})")
