"""Adapters by provider name, looked up through the catalog's `ModelSpec.provider`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from opentelemetry import trace

from costmesh.accounting import baseline_usd
from costmesh.catalog import Catalog, ModelSpec
from costmesh.domain import Generation, Message, Sampling
from costmesh.errors import InvalidRequest, Unavailable
from costmesh.output_spec import OutputSpec, check_conversation
from costmesh.services.providers.base import ProviderAdapter, StreamEvent

SETUP_HINTS = {
    "anthropic": "set ANTHROPIC_API_KEY (or COSTMESH_SIMULATOR_URL to use the simulator)",
    "openai": "set OPENAI_API_KEY (or COSTMESH_SIMULATOR_URL to use the simulator)",
    "vllm": "set COSTMESH_INFERENCE_ADDRS to the inference replicas' addresses",
}


class AdapterRegistry:
    """Resolves a catalog model id to its spec and the adapter of its provider."""

    def __init__(self, catalog: Catalog, adapters: Mapping[str, ProviderAdapter]):
        self.catalog = catalog
        self._adapters = dict(adapters)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted(self._adapters))

    def resolve(self, model_id: str) -> tuple[ModelSpec, ProviderAdapter]:
        if not model_id:
            raise InvalidRequest("model: required (a catalog model id)")
        spec = self.catalog.model(model_id)  # InvalidRequest naming `model` when unknown
        adapter = self._adapters.get(spec.provider)
        if adapter is None:
            hint = SETUP_HINTS.get(spec.provider, f"configure an adapter for provider {spec.provider!r}")
            raise Unavailable(
                f"model {model_id!r}: provider {spec.provider!r} is not configured on this providers service; {hint}"
            )
        return spec, adapter

    def served_models(self) -> list[ModelSpec]:
        """The catalog's models whose provider is configured here."""
        return [spec for spec in self.catalog.models.values() if spec.provider in self._adapters]

    async def generate(
        self,
        model_id: str,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str = "",
        *,
        output: OutputSpec = OutputSpec(),
        timeout_s: float | None = None,
    ) -> Generation:
        spec, adapter = self._checked(model_id, messages, sampling)
        generation = await adapter.generate(spec, messages, sampling, tenant_id, output=output, timeout_s=timeout_s)
        self._record_baseline(generation)
        return generation

    async def stream(
        self,
        model_id: str,
        messages: tuple[Message, ...],
        sampling: Sampling,
        tenant_id: str = "",
        *,
        output: OutputSpec = OutputSpec(),
        timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        spec, adapter = self._checked(model_id, messages, sampling)
        async for event in adapter.stream(spec, messages, sampling, tenant_id, output=output, timeout_s=timeout_s):
            if isinstance(event, Generation):
                self._record_baseline(event)
            yield event

    def _record_baseline(self, generation: Generation) -> None:
        """The baseline beside the cost on the span: the same tokens on the premium model, list price."""
        baseline = baseline_usd(self.catalog, generation.usage)
        trace.get_current_span().set_attribute("costmesh.baseline_cost_usd", baseline)

    def _checked(
        self, model_id: str, messages: tuple[Message, ...], sampling: Sampling
    ) -> tuple[ModelSpec, ProviderAdapter]:
        resolved = self.resolve(model_id)
        validate(messages, sampling)
        return resolved

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.close()


def validate(messages: tuple[Message, ...], sampling: Sampling) -> None:
    """What every provider needs: some messages, each with content (an assistant message may
    only call tools), tool results that answer earlier calls, and a positive token budget."""
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not message.parts and not message.tool_calls:
            raise InvalidRequest(f"messages[{index}].content: at least one part is required")
    check_conversation(messages)
    if sampling.max_tokens <= 0:
        raise InvalidRequest("sampling.max_tokens: must be positive")
