"""Services cap numpy's BLAS threads (spinning OpenBLAS threads burned the shared cores)."""

from __future__ import annotations

import subprocess
import sys

import numpy  # noqa: F401 - loads OpenBLAS, which threadpool_info then sees
from threadpoolctl import threadpool_info


def _blas_threads_after_cap(value: str | None) -> int:
    env_line = "" if value is None else f"'COSTMESH_BLAS_THREADS': '{value}'"
    code = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from costmesh.rpc.server import cap_blas_threads\n"
        "from costmesh.server_settings import ServerSettings\n"
        f"cap_blas_threads(ServerSettings.load({{{env_line}}}).blas_threads)\n"
        "print(min(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return int(result.stdout.strip())


def test_services_run_blas_on_one_thread_by_default():
    assert any(i["user_api"] == "blas" for i in threadpool_info())  # numpy's OpenBLAS is there to cap
    assert _blas_threads_after_cap(None) == 1
    assert _blas_threads_after_cap("2") == 2
