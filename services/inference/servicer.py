"""InferenceService over gRPC: protobuf <-> inference domain objects, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing

from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.convert import messages_from_pb, sampling_from_pb
from costmesh.domain import Sampling
from costmesh.errors import InvalidRequest

from .engine import InferenceEngine, Prompt
from .results import GenerateResult, TextDelta


def _inputs(request: inference_pb2.GenerateRequest | inference_pb2.StreamGenerateRequest) -> tuple[Prompt, Sampling]:
    kind = request.WhichOneof("input")
    if kind == "prompt":
        prompt: Prompt = request.prompt
    elif kind == "chat":
        prompt = messages_from_pb(request.chat.messages)
    else:
        raise InvalidRequest("input: set prompt or chat")
    return prompt, sampling_from_pb(request.sampling)


def _result_pb(result: GenerateResult, *, with_text: bool = True) -> inference_pb2.GenerateResponse:
    return inference_pb2.GenerateResponse(
        text=result.text if with_text else "",
        prompt_tokens=result.prompt_tokens,
        cached_prompt_tokens=result.cached_prompt_tokens,
        output_tokens=result.output_tokens,
        finish_reason=result.finish_reason,
        model=result.model,
    )


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, engine: Callable[[], InferenceEngine]):
        self._engine = engine  # raises Unavailable while the engine loads

    async def Generate(self, request: inference_pb2.GenerateRequest, context) -> inference_pb2.GenerateResponse:
        prompt, sampling = _inputs(request)
        result = await self._engine().complete(prompt, sampling, request.request_id or None)
        return _result_pb(result)

    async def StreamGenerate(self, request: inference_pb2.StreamGenerateRequest, context):
        prompt, sampling = _inputs(request)
        events = self._engine().generate(prompt, sampling, request.request_id or None)
        async with aclosing(events):  # a cancelled call closes it, which aborts the engine request
            async for event in events:
                if isinstance(event, TextDelta):
                    yield inference_pb2.StreamGenerateResponse(text_delta=event.text)
                else:
                    yield inference_pb2.StreamGenerateResponse(final=_result_pb(event, with_text=False))

    async def GetStats(self, request: inference_pb2.GetStatsRequest, context) -> inference_pb2.GetStatsResponse:
        s = self._engine().stats()
        return inference_pb2.GetStatsResponse(
            prefix_cache_hit_rate=s.prefix_cache_hit_rate,
            kv_cache_usage=s.kv_cache_usage,
            running_requests=s.running_requests,
            waiting_requests=s.waiting_requests,
            prefix_cache_queries=s.prefix_cache_queries,
            prefix_cache_hits=s.prefix_cache_hits,
            model=s.model,
        )
