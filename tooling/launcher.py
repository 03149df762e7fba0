"""Starts the whole mesh on one machine, each service its own process (demo, bench, e2e tests).

Embedded Redis (unless REDIS_URL is given; its AOF in the run directory), the simulator (unless real provider keys are
configured and no simulator is wanted), then cache, classifier, providers, router, batches, gateway,
each on a free loopback port, each waited for through the standard gRPC health service.

Service credentials: the mesh secret every service signs its calls with is made in the run
directory (`mesh-secret`, mode 0600) unless COSTMESH_MESH_SECRET_FILE names one. Supervision:
a process that dies is started again on its port (after 0.5 s, doubling up to 30 s while it
keeps dying), and its callers reconnect within a second (`costmesh.rpc.channels`); the embedded
Redis too, on its port with its data directory (`SupervisedRedis`: it loads its AOF again).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.errors import ConfigError, Unavailable
from costmesh.rpc.mesh_secret import ensure_secret
from costmesh.tooling.launcher_settings import LauncherSettings

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
    module: str = ""  # what `python -m` runs, and with which environment: a restart runs it again
    env: dict[str, str] = field(default_factory=dict, repr=False)
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def respawn(self) -> None:
        """Start the same command again, logging to the same file (on the same port)."""
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"--- {self.name} restarted by the launcher (restart {self.restarts + 1}) ---\n".encode())
        self.popen = _spawn(self.name, self.module, self.env, self.log_path.parent, self.address).popen
        self.restarts += 1
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _report(line: str) -> None:
    print(f"costmesh: {line}", file=sys.stderr, flush=True)


class Supervisor:
    """Starts a process of the mesh again when it dies: after `base_delay_s`, doubling with each
    death up to `max_delay_s`; a process that has run `stable_s` since its restart starts over
    at `base_delay_s`. A thread of its own, so `costmesh serve` can sleep in `signal.pause()`."""

    def __init__(self, processes: dict[str, Process], report: Callable[[str], None] = _report, *,
                 poll_s: float = 0.2, base_delay_s: float = 0.5, max_delay_s: float = 30.0, stable_s: float = 60.0):
        self._processes = processes
        self._report = report
        self._poll_s = poll_s
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._stable_s = stable_s
        self._deaths: dict[str, int] = {}  # deaths in a row, for the backoff
        self._due: dict[str, float] = {}  # name -> when it is started again
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="costmesh-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No restart after this returns (the mesh is about to stop its processes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            for process in list(self._processes.values()):
                if self._stop.is_set():
                    return
                try:
                    self._check(process)
                except (OSError, ConfigError) as exc:  # could not start it again: try later
                    self._report(f"{process.name}: restart failed ({exc}); trying again")
                    self._due[process.name] = time.monotonic() + self._max_delay_s

    def _check(self, process: Process) -> None:
        now = time.monotonic()
        code = process.popen.poll()
        if code is None:
            if self._deaths.get(process.name) and now - process.started_at >= self._stable_s:
                self._deaths[process.name] = 0
            return
        due = self._due.get(process.name)
        if due is None:
            deaths = self._deaths.get(process.name, 0)
            delay = min(self._max_delay_s, self._base_delay_s * 2 ** deaths)
            self._deaths[process.name] = deaths + 1
            self._due[process.name] = now + delay
            self._report(f"{process.name} exited with code {code}; starting it again in {delay:.1f} s "
                         f"(log: {process.log_path})")
        elif now >= due:
            del self._due[process.name]
            process.respawn()
            self._report(f"{process.name} started again (pid {process.popen.pid}, restart {process.restarts})")


@dataclass
class Mesh:
    """A running mesh. `gateway` is the address clients call."""

    run_dir: Path
    env: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    redis: object | None = None
    simulator_url: str | None = None
    http_url: str | None = None  # the gateway's OpenAI-compatible API, e.g. http://127.0.0.1:PORT/v1
    ca_file: Path | None = None  # with TLS at the gateway: what clients trust (COSTMESH_TLS_CA_FILE or the cert)
    _keys: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None

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
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
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
    supervise: bool = True,
    only: Collection[str] | None = None,
    tls: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Mesh:
    """Start everything and return once every service reports SERVING. Each service gets a free
    loopback port, except the gateway when `gateway_port` pins it. `supervise`: start a process
    that dies again (`Supervisor`) until the mesh stops. `only`: these services and the peers
    they need, not the whole mesh. `tls`: the gateway serves TLS (gRPC and HTTP) with
    COSTMESH_TLS_CERT_FILE/KEY_FILE, or a CA and certificate made in the run directory's tls/
    (`Mesh.ca_file` for clients); without it, plaintext on loopback. `progress`: told one line
    as Redis, the simulator and then each service is ready (in the order they become healthy)."""
    report = progress or (lambda _line: None)
    started = time.monotonic()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("PYTHONUNBUFFERED", "1")
    mesh = Mesh(run_dir, env)
    try:
        if not env.get("REDIS_URL"):
            from costmesh.tooling.redis_embedded import EmbeddedRedis

            # Its data survives a restart of Redis (AOF in the run directory, or COSTMESH_REDIS_DATA_DIR),
            # capped at COSTMESH_REDIS_MAXMEMORY (default 1gb), evicting only keys with a TTL.
            settings = LauncherSettings.load(env)
            mesh.redis = EmbeddedRedis(data_dir=settings.redis_data_dir or run_dir / "redis",
                                       maxmemory=settings.redis_maxmemory)
            mesh.redis.start()
            env["REDIS_URL"] = mesh.redis.url
            report(f"redis ready at {mesh.redis.url} ({time.monotonic() - started:.1f} s)")
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
            report(f"simulator ready at {env['COSTMESH_SIMULATOR_URL']} ({time.monotonic() - started:.1f} s)")
        mesh.simulator_url = env.get("COSTMESH_SIMULATOR_URL")
        # Authentication is always on: unless the caller brings its own key file, the mesh gets
        # a fresh one in its run directory, and `mesh.api_key(tenant)` mints keys into it.
        env.setdefault("COSTMESH_API_KEYS_FILE", str(run_dir / "api-keys.json"))
        from costmesh.gateway.auth import KeyStore

        KeyStore(env["COSTMESH_API_KEYS_FILE"]).ensure_file()
        # Service credentials are on too: the services sign their calls with this secret.
        env.setdefault("COSTMESH_MESH_SECRET_FILE", str(run_dir / "mesh-secret"))
        ensure_secret(env["COSTMESH_MESH_SECRET_FILE"])
        if tls and not env.get("COSTMESH_TLS_CERT_FILE"):
            from costmesh.tooling.tls_cert import make_tls_files

            files = make_tls_files(run_dir / "tls")
            env.update(COSTMESH_TLS_CERT_FILE=str(files.cert_file), COSTMESH_TLS_KEY_FILE=str(files.key_file),
                       COSTMESH_TLS_CA_FILE=str(files.ca_file))
        if env.get("COSTMESH_TLS_CERT_FILE") and env.get("COSTMESH_TLS", "auto") != "off":
            mesh.ca_file = Path(env.get("COSTMESH_TLS_CA_FILE") or env["COSTMESH_TLS_CERT_FILE"])
        if not env.get("COSTMESH_HTTP_PORT"):
            env["COSTMESH_HTTP_PORT"] = str(free_port())
        if env["COSTMESH_HTTP_PORT"] != "0":
            scheme = "https" if mesh.ca_file else "http"
            mesh.http_url = f"{scheme}://127.0.0.1:{env['COSTMESH_HTTP_PORT']}/v1"

        addresses: dict[str, str] = {}
        wanted = _with_peers(only) if only is not None else {name for name, _, _ in SERVICES}
        for name, module, peers in SERVICES:
            if name not in wanted:
                continue
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
        _wait_all_healthy([p for p in mesh.processes.values() if p.name != "simulator"], startup_timeout_s,
                          mesh.ca_file, lambda p: report(f"{p.name} healthy at {p.address} "
                                                         f"({time.monotonic() - started:.1f} s)"))
        if supervise:
            supervised = dict(mesh.processes)
            if mesh.redis is not None:  # the embedded Redis comes back too, with its AOF
                from costmesh.tooling.redis_embedded import SupervisedRedis

                supervised["redis"] = SupervisedRedis(mesh.redis)
            mesh.supervisor = Supervisor(supervised)
            mesh.supervisor.start()
    except BaseException:
        mesh.stop()
        raise
    return mesh


def _with_peers(names: Collection[str]) -> set[str]:
    peers = {name: needs for name, _, needs in SERVICES}
    unknown = set(names) - set(peers)
    if unknown:
        raise ConfigError(f"no such service: {sorted(unknown)} (known: {sorted(peers)})")
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(peers[name])
    return wanted


def _spawn(name: str, module: str, env: dict[str, str], run_dir: Path, address: str) -> Process:
    log_path = run_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
    popen = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    return Process(name, popen, address, log_path, module=module, env=env)


def _check_alive(process: Process) -> None:
    if process.popen.poll() is not None:
        tail = process.log_path.read_text(errors="replace")[-3000:]
        raise ConfigError(f"{process.name} exited with code {process.popen.returncode}:\n{tail}")


def _wait_healthy(process: Process, timeout_s: float, ca_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    credentials = grpc.ssl_channel_credentials(ca_file.read_bytes()) if ca_file else None
    with (grpc.secure_channel(process.address, credentials) if credentials
          else grpc.insecure_channel(process.address)) as channel:
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


def _wait_all_healthy(processes: list[Process], timeout_s: float, ca_file: Path | None,
                      healthy: Callable[[Process], None]) -> None:
    """Wait until every process reports SERVING (the gateway's health check over TLS, trusting
    `ca_file`, when it serves TLS), telling `healthy` of each as it does."""
    deadline = time.monotonic() + timeout_s
    credentials = grpc.ssl_channel_credentials(ca_file.read_bytes()) if ca_file else None
    channels = {p.name: (grpc.secure_channel(p.address, credentials) if credentials and p.name == "gateway"
                         else grpc.insecure_channel(p.address)) for p in processes}
    pending = list(processes)
    try:
        while pending:
            for process in list(pending):
                _check_alive(process)
                try:
                    reply = health_pb2_grpc.HealthStub(channels[process.name]).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                except grpc.RpcError:
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    pending.remove(process)
                    healthy(process)
            if pending:
                if time.monotonic() >= deadline:
                    names = ", ".join(p.name for p in pending)
                    raise Unavailable(f"{names} did not become healthy within {timeout_s:.0f} s "
                                      f"(logs: {pending[0].log_path.parent})")
                time.sleep(0.2)
    finally:
        for channel in channels.values():
            channel.close()


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
