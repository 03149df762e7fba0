"""vLLM's async engine (V1) with automatic prefix caching, behind a small async API. No gRPC here.

vLLM is imported only when an engine is started, so this module (and the servicer) import in
an environment without vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from opentelemetry import trace

from costmesh.domain import Message, Role, Sampling
from costmesh.errors import ConfigError, InvalidRequest, Unavailable, UpstreamError
from costmesh.services.inference.results import EngineStats, GenerateResult, TextDelta
from costmesh.services.inference.settings import EngineSettings
from costmesh.services.inference.stats import StatsCollector, stat_logger_factory

Prompt = str | Sequence[Message]
_ROLE_NAMES = {Role.SYSTEM: "system", Role.USER: "user", Role.ASSISTANT: "assistant"}


class InferenceEngine:
    """One `vllm.v1.engine.async_llm.AsyncLLM` and the stats its stat loggers feed."""

    def __init__(self, llm: Any, collector: StatsCollector, model: str | None = None):
        self._llm = llm
        self._collector = collector
        self.model = model or str(llm.model_config.served_model_name)

    @classmethod
    async def start(cls, settings: EngineSettings) -> "InferenceEngine":
        """Build the engine off the event loop (loading a model blocks for seconds to minutes)."""
        return await asyncio.to_thread(cls._build, settings)

    @classmethod
    def _build(cls, settings: EngineSettings) -> "InferenceEngine":
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = settings.resolved_args(
            on_cpu=current_platform.is_cpu(), cpu_kv_env_set=bool(os.environ.get("VLLM_CPU_KVCACHE_SPACE"))
        )
        try:
            engine_args = AsyncEngineArgs(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"COSTMESH_VLLM_ARGS: {exc}") from None
        collector = StatsCollector()
        # No local names the AsyncLLM: vLLM keeps this frame alive, and `close` must be able to drop it.
        return cls(
            AsyncLLM.from_engine_args(engine_args, stat_loggers=[stat_logger_factory(collector)]),
            collector,
        )

    async def close(self) -> None:
        """Stop the engine core processes (blocking in vLLM, so off the loop)."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        # Stop reading outputs first: otherwise the reader sees the engine core exit and logs it as a crash.
        handler = getattr(llm, "output_handler", None)
        if handler is not None:
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handler
        await asyncio.to_thread(llm.shutdown)

    def stats(self) -> EngineStats:
        return self._collector.snapshot(self.model)

    async def complete(self, prompt: Prompt, sampling: Sampling, request_id: str | None = None) -> GenerateResult:
        """Run a request to the end and return its final result."""
        async with contextlib.aclosing(self.generate(prompt, sampling, request_id)) as events:
            async for event in events:
                if isinstance(event, GenerateResult):
                    return event
        raise UpstreamError("engine ended the request without a result")

    async def generate(
        self, prompt: Prompt, sampling: Sampling, request_id: str | None = None
    ) -> AsyncIterator[TextDelta | GenerateResult]:
        """Text deltas in order, then one `GenerateResult`.

        `prompt` is raw text, or chat messages rendered with the tokenizer's chat template.
        Closing or cancelling the consumer before the result aborts the request in the engine,
        which frees its KV blocks.
        """
        from vllm.exceptions import GracefulHTTPError, VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError

        params = self._sampling_params(sampling)
        engine_input = await self._render(prompt)
        # Unique per call even when a client reuses its id: aborting one must never abort another.
        request_id = f"{request_id or 'costmesh'}-{uuid.uuid4().hex[:16]}"
        texts: list[str] = []
        output_tokens = 0
        finished = False
        try:
            async with contextlib.aclosing(self._llm.generate(engine_input, params, request_id)) as outputs:
                async for out in outputs:
                    completion = out.outputs[0]
                    output_tokens += len(completion.token_ids)
                    if completion.text:
                        texts.append(completion.text)
                        yield TextDelta(completion.text)
                    if out.finished:
                        finished = True
                        result = GenerateResult(
                            text="".join(texts),
                            prompt_tokens=len(out.prompt_token_ids or ()),
                            cached_prompt_tokens=out.num_cached_tokens or 0,
                            output_tokens=output_tokens,
                            finish_reason=completion.finish_reason or "stop",
                            model=self.model,
                            request_id=request_id,
                        )
                        _annotate_span(result)
                        yield result
                        return
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from exc
        except (EngineDeadError, GracefulHTTPError) as exc:
            raise Unavailable(f"inference engine: {exc}") from exc
        finally:
            if not finished and self._llm is not None:
                await self._llm.abort(request_id)

    def _sampling_params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        if sampling.max_tokens <= 0:
            raise InvalidRequest("sampling.max_tokens: must be positive")
        kwargs: dict[str, Any] = {
            "max_tokens": sampling.max_tokens,
            "output_kind": RequestOutputKind.DELTA,
            "stop": list(sampling.stop) or None,
            "seed": sampling.seed,
        }
        if sampling.temperature is not None:
            kwargs["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            kwargs["top_p"] = sampling.top_p
        try:
            return SamplingParams(**kwargs)
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(f"sampling: {exc}") from None

    async def _render(self, prompt: Prompt) -> Any:
        """Tokenize (and for chat, apply the chat template) through vLLM's renderer, off the loop."""
        from vllm.exceptions import VLLMClientError
        from vllm.renderers import ChatParams
        from vllm.renderers.inputs.preprocess import parse_model_prompt

        renderer = self._llm.renderer
        try:
            if isinstance(prompt, str):
                if not prompt.strip():
                    raise InvalidRequest("prompt: must not be empty")
                (engine_input,) = await renderer.render_cmpl_async([parse_model_prompt(self._llm.model_config, prompt)])
            else:
                messages = chat_messages(prompt)
                # A trailing assistant message is a prefill to continue; otherwise open the assistant's turn.
                prefill = messages[-1]["role"] == "assistant"
                params = ChatParams(
                    chat_template_kwargs={"add_generation_prompt": not prefill, "continue_final_message": prefill}
                )
                _, (engine_input,) = await renderer.render_chat_async([messages], params)
        except (VLLMClientError, ValueError, TypeError) as exc:
            raise InvalidRequest(f"prompt: {exc}") from None
        return engine_input


def chat_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Domain messages as the chat template's `messages` (text only)."""
    if not messages:
        raise InvalidRequest("chat.messages: must not be empty")
    out = []
    for i, message in enumerate(messages):
        if any(part.image is not None for part in message.parts):
            raise InvalidRequest(f"chat.messages[{i}]: images are not supported by the inference service")
        out.append({"role": _ROLE_NAMES[message.role], "content": message.text})
    if not any(m["content"].strip() for m in out):
        raise InvalidRequest("chat.messages: all messages are empty")
    return out


def _annotate_span(result: GenerateResult) -> None:
    span = trace.get_current_span()
    span.set_attribute("gen_ai.request.model", result.model)
    span.set_attribute("gen_ai.usage.input_tokens", result.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", result.output_tokens)
    span.set_attribute("costmesh.inference.cached_tokens", result.cached_prompt_tokens)
