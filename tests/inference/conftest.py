"""Inference tests: one tiny random-weight Llama and one real vLLM engine (CPU) for the session,
behind a real gRPC service on port 0. Run them in the inference venv:

    scripts/inference_venv.sh && .venv-inference/bin/python -m pytest tests/inference -q
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.config import Env
from costmesh.rpc.server import RunningService, start_service

from inference_helpers import BLOCK_SIZE

# Engine core and model runner in one process (no separate worker to spawn): starts in ~20 s on 2 cores.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

ENGINE_ARGS = {
    "max_model_len": 4096,
    "block_size": BLOCK_SIZE,
    "dtype": "float32",  # no AVX512-BF16 here; bf16 falls back to slow paths
    "enforce_eager": True,  # no inductor compile at start
    "distributed_executor_backend": "uni",
    "kv_cache_memory_bytes": 512 * 1024 * 1024,
}
LOAD_TIMEOUT_S = 300


@dataclass
class InferenceHarness:
    service: RunningService
    stub: inference_pb2_grpc.InferenceServiceStub
    health: health_pb2_grpc.HealthStub
    model_dir: str
    tokenizer: object
    health_before_ready: dict[str, int]  # service name -> status seen right after start
    error_before_ready: grpc.aio.AioRpcError | None  # what a call got while the engine loaded


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    from costmesh.services.inference.tiny_model import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
async def inference(tiny_model_dir) -> InferenceHarness:
    from transformers import AutoTokenizer

    from costmesh.services.inference.service import FULL_NAME, SPEC

    env = Env({
        "COSTMESH_MESH_AUTH": "off",
        "COSTMESH_VLLM_MODEL": tiny_model_dir,
        "COSTMESH_VLLM_ARGS": json.dumps(ENGINE_ARGS),
        "COSTMESH_LOG_LEVEL": "warning",
    })
    service = await start_service(SPEC, env, port=0)
    channel = grpc.aio.insecure_channel(service.address)
    health = health_pb2_grpc.HealthStub(channel)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    try:
        before = {
            name: (await health.Check(health_pb2.HealthCheckRequest(service=name))).status for name in ("", FULL_NAME)
        }
        error = None
        try:
            await stub.GetStats(inference_pb2.GetStatsRequest())
        except grpc.aio.AioRpcError as exc:
            error = exc
        await _wait_serving(health, FULL_NAME, LOAD_TIMEOUT_S)
        yield InferenceHarness(
            service, stub, health, tiny_model_dir, AutoTokenizer.from_pretrained(tiny_model_dir), before, error
        )
    finally:
        await channel.close()
        await service.stop()


async def _wait_serving(health: health_pb2_grpc.HealthStub, name: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        status = (await health.Check(health_pb2.HealthCheckRequest(service=name))).status
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"inference engine not SERVING after {timeout_s} s")
