"""`costmesh serve`: the mesh on this machine until interrupted."""

from __future__ import annotations

import signal
import tempfile

from costmesh.tooling.launcher import start_mesh


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return serve_forever()


def serve_forever() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="costmesh-") as run_dir, start_mesh(run_dir) as mesh:
        print(f"costmesh gateway listening on {mesh.gateway} (logs in {run_dir}); Ctrl-C stops it", flush=True)
        print(f"OpenAI-compatible API: {mesh.http_url}; API key for tenant 'demo': {mesh.api_key('demo')}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0
