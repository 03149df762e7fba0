"""`costmesh dashboard` as a child process, for `costmesh serve`: started beside the mesh, ready
when it answers /healthz, stopped with it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from costmesh.errors import ConfigError

READY_TIMEOUT_S = 30.0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def dashboard_process(port: int, records_dir: Path, keys_file: str | None, token_file: Path,
                      log_path: Path) -> Iterator[str]:
    """Yields the dashboard's address (`http://127.0.0.1:<port>/dashboard`) once it answers."""
    command = [sys.executable, "-m", "costmesh.tooling.cli", "dashboard", "--host", "127.0.0.1",
               "--port", str(port), "--records-dir", str(records_dir), "--admin-token-file", str(token_file)]
    if keys_file:
        command += ["--keys-file", keys_file]
    env = {k: v for k, v in os.environ.items() if k != "COSTMESH_ADMIN_TOKEN"}  # the file is the token
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-800:]
                raise ConfigError(f"the dashboard did not start on port {port} (--dashboard-port 0 turns it "
                                  f"off); its log {log_path} ends:\n{tail}")
            time.sleep(0.2)
        yield f"{base}/dashboard"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
