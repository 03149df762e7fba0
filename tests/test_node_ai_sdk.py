"""Node: the Vercel AI SDK (`ai` + `@ai-sdk/openai`, from `clients/node`) pointed at the gateway's
OpenAI-compatible HTTP API by its base URL only, against the in-process mesh, real Redis and the
simulator: `generateText` with one tool runs its tool loop to the end (the model calls the tool, the
SDK sends its result back, the model answers in text that uses it) and every turn is billed."""

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.catalog import load_catalog
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"


@pytest.fixture(scope="module")
def ai_sdk_script() -> Path:
    """The AI SDK, installed from the client's lock file when scripts/test_tools.sh has not done it yet."""
    assert shutil.which("node"), "Node.js (20) is needed for the AI SDK test"
    if not all((NODE_DIR / "node_modules" / name).exists() for name in ("ai", "@ai-sdk/openai", "zod")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "ai-sdk-tool.mjs"


@pytest.fixture(scope="module")
async def mesh(redis_url):
    sim = await start_simulator(port=0)
    mesh = await start_inprocess_mesh(redis_url, sim.url, TracerProvider())
    yield mesh
    await mesh.stop()
    await sim.stop()


async def run_script(script: Path, *args: str, api_key: str) -> tuple[int, dict]:
    process = await asyncio.create_subprocess_exec(
        "node", str(script), *args, env={**os.environ, "COSTMESH_API_KEY": api_key},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert out.strip(), err.decode()
    return process.returncode, json.loads(out.decode().strip().splitlines()[-1])


async def test_generate_text_with_a_tool_completes_its_loop_and_every_turn_is_billed(mesh, ai_sdk_script):
    tenant = f"ai-sdk-{uuid.uuid4().hex[:8]}"  # its own cache scope: every turn reaches a model, even on a reused Redis
    code, reply = await run_script(ai_sdk_script, "--base-url", mesh.http_url,
                                   "What is the weather forecast in Paris today?", api_key=mesh.api_key(tenant))
    assert code == 0, reply
    steps, calls = reply["steps"], reply["calls"]

    # The tool was called, with arguments from the prompt, and the SDK ran it.
    assert reply["tool_calls"] and reply["tool_calls"][0]["name"] == "get_weather"
    call = reply["tool_calls"][0]
    assert "Paris" in call["input"]["city"]
    assert reply["tool_results"] == [{"id": call["id"], "name": "get_weather", "output": "Paris: 18 degrees and sunny"}]
    assert steps[0]["finish_reason"] == "tool-calls"

    # Its result went back to costmesh as a tool message answering that call, and the loop ended in text.
    assert len(steps) >= 2 and len(calls) == len(steps)
    assert all(item["path"] == "/v1/chat/completions" and item["tools_sent"] == ["get_weather"] for item in calls)
    assert calls[0]["tool_messages_sent"] == []
    assert {"tool_call_id": call["id"], "content": "Paris: 18 degrees and sunny"} in calls[1]["tool_messages_sent"]
    assert steps[-1]["finish_reason"] == "stop" and not steps[-1]["tool_calls"]
    assert reply["text"].strip() and reply["text"] == steps[-1]["text"] and "18 degrees" in reply["text"]

    # Every turn was answered by a catalog model and billed; the SDK's usage adds up over the turns.
    catalog = load_catalog().models
    for item, step in zip(calls, steps, strict=True):
        assert item["status"] == 200 and item["cache"] == "miss"
        assert item["model"] in catalog and item["model"] == step["model"]
        assert item["cost_usd"] > 0 and item["baseline_usd"] >= item["cost_usd"]
        assert step["usage"]["input_tokens"] > 0 and step["usage"]["output_tokens"] > 0
    assert reply["cost_usd"] == pytest.approx(sum(item["cost_usd"] for item in calls))
    usage = reply["usage"]
    assert usage["input_tokens"] == sum(step["usage"]["input_tokens"] for step in steps)
    assert usage["output_tokens"] == sum(step["usage"]["output_tokens"] for step in steps)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
