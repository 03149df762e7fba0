"""End to end in another language: the Node.js example client (`clients/node`, @grpc/grpc-js
loading the .proto files directly) against the mesh, real Redis and the simulator."""

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.catalog import load_catalog
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    """The example's dependencies, installed from its lock file when .ci/run has not done it yet."""
    assert shutil.which("node"), "Node.js (20) is needed for the Node client test"
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "example.js"


@pytest.fixture(scope="module")
async def mesh(redis_url):
    sim = await start_simulator(port=0)
    mesh = await start_inprocess_mesh(redis_url, sim.url, TracerProvider(), {"COSTMESH_HTTP_PORT": "0"})
    yield mesh
    await mesh.stop()
    await sim.stop()


async def node(example: Path, *args: str, api_key: str) -> tuple[int, dict]:
    process = await asyncio.create_subprocess_exec(
        "node", str(example), *args, env={**os.environ, "COSTMESH_API_KEY": api_key},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert out.strip(), err.decode()
    return process.returncode, json.loads(out.decode().strip().splitlines()[-1])


async def test_the_node_client_completes_a_request(mesh, node_client):
    key = mesh.api_key("node-tenant")
    code, reply = await node(node_client, "--target", mesh.gateway, "--max-tokens", "200",
                             "What is the speed of light in vacuum?", api_key=key)
    assert code == 0, reply
    assert reply["text"].strip() and reply["model"] in load_catalog().models
    assert reply["cache_status"] == "miss" and reply["tier"] in ("trivial", "simple", "moderate", "complex")
    assert reply["classified_tier"] in ("trivial", "simple", "moderate", "complex")
    assert reply["usage"]["output_tokens"] > 0
    assert reply["cost_usd"] > 0 and reply["baseline_cost_usd"] >= reply["cost_usd"]
    assert_micro_usd(reply)
    await mesh.stores_settled()
    code, again = await node(node_client, "--target", mesh.gateway, "--max-tokens", "200",
                             "What is the speed of light in vacuum?", api_key=key)
    assert code == 0 and again["cache_status"] == "exact_hit" and again["text"] == reply["text"]
    assert again["usage"] == {"input_tokens": 0, "output_tokens": 0} and again["tier"] is None  # as over HTTP


async def test_the_node_client_streams(mesh, node_client):
    code, reply = await node(node_client, "--target", mesh.gateway, "--stream", "--model", "gpt-5-mini",
                             "--max-tokens", "200", "Describe a hash table in three sentences.",
                             api_key=mesh.api_key("node-tenant"))
    assert code == 0, reply
    assert reply["deltas"] >= 2 and reply["text"].strip() and reply["model"] == "gpt-5-mini"
    assert reply["cost_usd"] > 0
    assert_micro_usd(reply)


def assert_micro_usd(reply: dict) -> None:
    """The integer micro-dollar fields came through (int64 as numbers), and the dollars are exactly them."""
    assert reply["cost_micro_usd"] > 0
    for name in ("cost", "baseline_cost", "saving"):
        assert reply[f"{name}_usd"] == reply[f"{name}_micro_usd"] / 1e6
        assert len(repr(reply[f"{name}_usd"]).split(".")[-1]) <= 6 or "e-" in repr(reply[f"{name}_usd"])
    assert reply["saving_micro_usd"] == reply["baseline_cost_micro_usd"] - reply["cost_micro_usd"]


async def test_the_node_client_takes_tier_names_and_the_http_option_names(mesh, node_client):
    """--min-tier complex: served at complex, and classified_tier still says what the classifier said."""
    code, reply = await node(node_client, "--target", mesh.gateway, "--min-tier", "complex", "--bypass",
                             "--max-tokens", "50", "What is 2+2?", api_key=mesh.api_key("node-tenant"))
    assert code == 0, reply
    assert reply["tier"] == "complex" and reply["cache_status"] == "bypassed"
    assert reply["classified_tier"] in ("trivial", "simple", "moderate")  # a trivial prompt is not complex


async def test_the_node_client_without_a_valid_key_is_refused(mesh, node_client):
    for key in ("", "cm_0000_forged"):
        code, reply = await node(node_client, "--target", mesh.gateway, "hello", api_key=key)
        assert code == 1 and reply["error"]["name"] == "UNAUTHENTICATED", reply
