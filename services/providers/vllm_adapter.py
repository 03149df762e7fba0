"""Self-hosted models through the inference service (`costmesh.inference.v1.InferenceService`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc

from costmesh import convert
from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling, Usage
from costmesh.errors import CostmeshError, InvalidRequest, RateLimited, UpstreamError
from costmesh.output_spec import OutputSpec
from costmesh.rpc.status import from_rpc_error
from costmesh.services.providers.base import StreamEvent, priced
from costmesh.services.providers.prefix_routing.health import HealthMonitor
from costmesh.services.providers.replica_picker import ReplicaPicker

NAME = "vllm"
Request = TypeVar("Request", inference_pb2.GenerateRequest, inference_pb2.StreamGenerateRequest)

FINISH_REASONS = {"stop": "stop", "length": "length", "abort": "abort"}
PLAIN = OutputSpec()


def check_servable(messages: tuple[Message, ...], output: OutputSpec, model: ModelSpec) -> None:
    """Self-hosted models here answer in free text only: no tools (offered, called or answered)
    and no JSON output. The catalog lists no such capability for them, so the router does not
    send such requests here; a caller that does gets `InvalidRequest` naming the field."""
    where = f"{NAME} ({model.id})"
    if output.tools:
        raise InvalidRequest(f"tools: {where} cannot call tools")
    if output.response_format.is_json:
        raise InvalidRequest(f"response_format: {where} has no JSON output ({output.response_format.type.value})")
    for i, message in enumerate(messages):
        if message.tool_calls:
            raise InvalidRequest(f"messages[{i}].tool_calls: {where} cannot call tools")
        if message.tool_call_id:
            raise InvalidRequest(f"messages[{i}].tool_call_id: {where} takes no tool results")


def usage_of(response: inference_pb2.GenerateResponse) -> Usage:
    """Inference usage -> domain Usage: every prompt token, of which the prefix cache served some."""
    return Usage(
        input_tokens=response.prompt_tokens,
        output_tokens=response.output_tokens,
        cache_read_tokens=response.cached_prompt_tokens,
    )


def build_request(
    messages: tuple[Message, ...], sampling: Sampling, message_type: type[Request] = inference_pb2.GenerateRequest
) -> Request:
    """The inference request of a call: Generate's, or StreamGenerate's (`message_type`)."""
    return message_type(
        chat=inference_pb2.ChatInput(messages=convert.messages_to_pb(messages)),
        sampling=convert.sampling_to_pb(sampling),
        request_id=uuid.uuid4().hex,
    )


class VLLMAdapter:
    """`ProviderAdapter` over inference replicas.

    The picker chooses the replica per request (prefix-aware or round-robin) among the healthy
    ones; a health monitor (standard gRPC health) takes failing replicas out and brings them
    back. A replica that answers UNAVAILABLE is taken out at once and the request goes to another
    one, if no output had been produced yet.
    """

    name = NAME

    def __init__(
        self,
        picker: ReplicaPicker,
        channel: Callable[[str], grpc.aio.Channel],
        *,
        health_interval_s: float | None = 2.0,
    ):
        self._picker = picker
        self._channel = channel
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, inference_pb2_grpc.InferenceServiceStub] = {}
        # None: no periodic checks (a replica taken out then stays out until `monitor.check` says otherwise).
        self.monitor = HealthMonitor(picker.health, self._channel_of, health_interval_s or 2.0)
        self._monitored = health_interval_s is not None

    @property
    def picker(self) -> ReplicaPicker:
        return self._picker

    def _channel_of(self, replica: str) -> grpc.aio.Channel:
        channel = self._channels.get(replica)
        if channel is None:
            channel = self._channels[replica] = self._channel(replica)
        return channel

    def _stub(self, replica: str) -> inference_pb2_grpc.InferenceServiceStub:
        stub = self._stubs.get(replica)
        if stub is None:
            stub = self._stubs[replica] = inference_pb2_grpc.InferenceServiceStub(self._channel_of(replica))
        return stub

    def _start_monitor(self) -> None:
        if self._monitored:
            self.monitor.start()

    async def generate(
        self,
        model: ModelSpec,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str,
        *,
        output: OutputSpec = PLAIN,
        timeout_s: float | None = None,
    ) -> Generation:
        check_servable(messages, output, model)
        self._start_monitor()
        request = build_request(messages, sampling)
        tried: frozenset[str] = frozenset()
        while True:
            replica = self._picker.pick(messages, tried)
            try:
                response = await self._stub(replica).Generate(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                if self._take_out(replica, exc):
                    tried |= {replica}
                    if len(tried) < len(self._picker.replicas):
                        continue
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
        output: OutputSpec = PLAIN,
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        check_servable(messages, output, model)
        self._start_monitor()
        request = build_request(messages, sampling, inference_pb2.StreamGenerateRequest)
        tried: frozenset[str] = frozenset()
        while True:
            replica = self._picker.pick(messages, tried)
            final = None
            started = False
            try:
                call = self._stub(replica).StreamGenerate(request, timeout=timeout_s)
                try:
                    async for event in call:
                        started = True
                        if event.WhichOneof("event") == "text_delta":
                            if event.text_delta:
                                yield event.text_delta
                        elif event.WhichOneof("event") == "final":
                            final = event.final
                finally:
                    call.cancel()
            except grpc.aio.AioRpcError as exc:
                if self._take_out(replica, exc) and not started:
                    tried |= {replica}
                    if len(tried) < len(self._picker.replicas):
                        continue
                raise _mapped(exc, model, replica) from exc
            finally:
                self._picker.done(replica)
            if final is None:
                raise _mapped_missing_final(model, replica)
            yield _priced(model, final, "", request.request_id)
            return

    def _take_out(self, replica: str, exc: grpc.aio.AioRpcError) -> bool:
        """UNAVAILABLE (down, unreachable, engine not loaded): out of rotation until a health check passes."""
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            self._picker.health.set_up(replica, False)
            return True
        return False

    async def close(self) -> None:
        await self.monitor.stop()
        for channel in self._channels.values():
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
