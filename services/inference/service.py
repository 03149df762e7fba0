"""The inference service: env -> engine settings, the engine loaded in the background, mounted on the bootstrap.

Env: COSTMESH_VLLM_MODEL (required: model directory or hub id), COSTMESH_VLLM_ARGS (optional:
extra vLLM engine args, JSON or CLI style; see `settings.py`). vLLM's own variables
(VLLM_CPU_KVCACHE_SPACE, VLLM_ENABLE_V1_MULTIPROCESSING, ...) apply as usual.
Health is NOT_SERVING until the engine has loaded; calls before then fail UNAVAILABLE.
"""

from __future__ import annotations

from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.rpc.server import Mounted, Runtime, Servicer, ServiceSpec

from .engine import InferenceEngine
from .servicer import InferenceServicer
from .settings import EngineSettings
from .slot import EngineSlot

FULL_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


async def mount(runtime: Runtime) -> Mounted:
    settings = EngineSettings.load(runtime.env)  # missing or malformed config fails here, at start
    settings.require("model")
    slot = EngineSlot(runtime.log)

    async def ready() -> None:
        await runtime.set_serving(True)

    slot.start_loading(lambda: InferenceEngine.start(settings), ready)
    servicer = InferenceServicer(slot.get)
    return Mounted(
        servicers=[Servicer(inference_pb2_grpc.add_InferenceServiceServicer_to_server, servicer, FULL_NAME)],
        close=slot.close,
        serving=False,
    )


SPEC = ServiceSpec("inference", 50056, mount)
