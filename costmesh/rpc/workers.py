"""Several worker processes of one service on one port, so a service can use every core.

`COSTMESH_WORKERS=N` (per service): the process started by `python -m ...` serves as worker 0
and starts N-1 more of the same command. Each binds the same host:port; gRPC sets SO_REUSEPORT,
so the kernel spreads new connections over them (one long-lived HTTP/2 connection per client
channel: give clients several channels, or round-robin over replicas, to spread the calls).
Each worker is a whole process with its own models and event loop; worker i serves its metrics
on COSTMESH_METRICS_PORT + i. The first worker watches the others: one that dies is started
again (after a pause that doubles up to 30 s), and SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field

WORKER_INDEX = "COSTMESH_WORKER_INDEX"


def worker_env(base: dict[str, str], index: int) -> dict[str, str]:
    """The environment of worker `index`: the same port, its own metrics port."""
    env = {**base, WORKER_INDEX: str(index)}
    metrics = base.get("COSTMESH_METRICS_PORT")
    if metrics and metrics != "0":
        env["COSTMESH_METRICS_PORT"] = str(int(metrics) + index)
    return env


@dataclass
class Workers:
    """The extra worker processes of this service (indexes 1..N-1), restarted when they die."""

    count: int
    command: list[str] = field(default_factory=lambda: list(sys.orig_argv))
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)
    restarts: int = 0

    def start(self, port: int) -> None:
        base = {**os.environ, "COSTMESH_PORT": str(port)}
        for index in range(1, self.count):
            self.processes[index] = subprocess.Popen(self.command, env=worker_env(base, index))

    async def supervise(self, port: int, log) -> None:
        """Restart a worker that exited, with backoff, until cancelled."""
        delays = dict.fromkeys(self.processes, 0.5)
        base = {**os.environ, "COSTMESH_PORT": str(port)}
        while True:
            await asyncio.sleep(0.5)
            for index, process in list(self.processes.items()):
                if process.poll() is None:
                    continue
                log.warning("worker exited; starting it again", worker=index, code=process.returncode,
                            after_s=delays[index])
                await asyncio.sleep(delays[index])
                delays[index] = min(delays[index] * 2, 30.0)
                self.processes[index] = subprocess.Popen(self.command, env=worker_env(base, index))
                self.restarts += 1

    def stop(self, grace_s: float) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=grace_s + 2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
