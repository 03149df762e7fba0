"""Self-hosted models through the inference service (`costmesh.inference.v1.InferenceService`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import grpc

from costmesh import convert
from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling, Usage
from costmesh.errors import CostmeshError, RateLimited, UpstreamError
from costmesh.rpc.status import from_rpc_error
from costmesh.services.providers.base import StreamEvent, priced
from costmesh.services.providers.replica_picker import ReplicaPicker

NAME = "vllm"

FINISH_REASONS = {"stop": "stop", "length": "length", "abort": "abort"}


def usage_of(response: inference_pb2.GenerateResponse) -> Usage:
    """Inference usage -> domain Usage: every prompt token, of which the prefix cache served some."""
    return Usage(
        input_tokens=response.prompt_tokens,
        output_tokens=response.output_tokens,
        cache_read_tokens=response.cached_prompt_tokens,
    )


def build_request(messages: tuple[Message, ...], sampling: Sampling) -> inference_pb2.GenerateRequest:
    return inference_pb2.GenerateRequest(
        chat=inference_pb2.ChatInput(messages=convert.messages_to_pb(messages)),
        sampling=convert.sampling_to_pb(sampling),
        request_id=uuid.uuid4().hex,
    )


class VLLMAdapter:
    """`ProviderAdapter` over inference replicas; the picker chooses the replica per request."""

    name = NAME

    def __init__(self, picker: ReplicaPicker, channel: Callable[[str], grpc.aio.Channel]):
        self._picker = picker
        self._channel = channel
        self._stubs: dict[str, inference_pb2_grpc.InferenceServiceStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def _stub(self, replica: str) -> inference_pb2_grpc.InferenceServiceStub:
        stub = self._stubs.get(replica)
        if stub is None:
            channel = self._channel(replica)
            self._channels.append(channel)
            stub = self._stubs[replica] = inference_pb2_grpc.InferenceServiceStub(channel)
        return stub

    async def generate(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        timeout_s: float | None = None,
    ) -> Generation:
        request = build_request(messages, sampling)
        replica = self._picker.pick(messages)
        try:
            response = await self._stub(replica).Generate(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _mapped(exc, model, replica) from exc
        finally:
            self._picker.done(replica)
        return _priced(model, response, response.text, request.request_id)

    async def stream(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        request = build_request(messages, sampling)
        replica = self._picker.pick(messages)
        final = None
        try:
            call = self._stub(replica).StreamGenerate(request, timeout=timeout_s)
            try:
                async for event in call:
                    if event.WhichOneof("event") == "text_delta":
                        if event.text_delta:
                            yield event.text_delta
                    elif event.WhichOneof("event") == "final":
                        final = event.final
            finally:
                call.cancel()
        except grpc.aio.AioRpcError as exc:
            raise _mapped(exc, model, replica) from exc
        finally:
            self._picker.done(replica)
        if final is None:
            raise _mapped_missing_final(model, replica)
        yield _priced(model, final, "", request.request_id)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def _priced(model: ModelSpec, response: inference_pb2.GenerateResponse, text: str, request_id: str) -> Generation:
    return priced(
        model,
        text=text,
        usage=usage_of(response),
        finish_reason=FINISH_REASONS.get(response.finish_reason, response.finish_reason or "stop"),
        request_id=request_id,
    )


def _mapped(exc: grpc.aio.AioRpcError, model: ModelSpec, replica: str) -> CostmeshError:
    """The replica's status as a domain error, its message naming model and replica."""
    error = from_rpc_error(exc)
    message = f"{NAME} ({model.id}) replica {replica}: {error}"
    if isinstance(error, RateLimited):
        return RateLimited(message, error.retry_after_s)
    return type(error)(message)


def _mapped_missing_final(model: ModelSpec, replica: str) -> CostmeshError:
    return UpstreamError(f"{NAME} ({model.id}) replica {replica}: stream ended without a final message")
