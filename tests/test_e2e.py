"""End to end: the whole mesh as separate processes, started the way `make demo` starts it."""

import asyncio
import subprocess
import sys

import pytest

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with start_mesh(tmp_path_factory.mktemp("mesh"), {"COSTMESH_LOG_LEVEL": "info"}) as mesh:
        yield mesh


async def test_requests_flow_through_every_process(mesh):
    async with GatewayClient(mesh.gateway, api_key=mesh.api_key) as client:
        first = await client.complete(build_request("What does HTTP status 404 mean?", tenant="e2e"))
        for _ in range(200):  # the answer is stored after it is sent: wait until the gateway sent its store
            if (await client.stats("e2e")).cache_stores >= 1:
                break
            await asyncio.sleep(0.05)
        repeat = await client.complete(build_request("What does HTTP status 404 mean?", tenant="e2e"))
        paraphrase = await client.complete(build_request("What is the meaning of HTTP status 404?", tenant="e2e"))
        others = await asyncio.gather(
            *(client.complete(build_request(f"Give one fact about the number {n}.", tenant="e2e")) for n in range(8))
        )
        stats = await client.stats("e2e")  # GetStats: the figures of the key's tenant only
    assert first.cache_status == gw.CACHE_STATUS_MISS and first.text and first.cost.total_usd > 0
    assert repeat.cache_status == gw.CACHE_STATUS_EXACT_HIT and repeat.text == first.text
    assert paraphrase.cache_status == gw.CACHE_STATUS_SEMANTIC_HIT
    assert all(o.text for o in others)
    assert stats.requests == 11 and stats.exact_hits == 1 and stats.semantic_hits == 1
    # Every service logged JSON lines carrying the trace id of the first request.
    for name in ("gateway", "cache", "providers"):
        assert '"trace_id"' in mesh.processes[name].log_path.read_text(), f"{name} logs carry no trace id"


def test_every_process_stops_cleanly(tmp_path):
    mesh = start_mesh(tmp_path)
    processes = dict(mesh.processes)
    mesh.stop()
    codes = {name: p.popen.returncode for name, p in processes.items()}
    assert all(code == 0 for code in codes.values()), codes


def test_the_demo_runs_and_reports_savings():
    result = subprocess.run(
        [sys.executable, "-m", "costmesh.tooling.cli", "demo", "--requests", "40"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "requests            40" in out
    for line in ("baseline (premium, no cache)", "costmesh", "by cache", "by routing", "tier mix"):
        assert line in out, out
    assert "stopped everything" in out
