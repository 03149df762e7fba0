"""The configured providers' batch APIs, looked up through the catalog's provider of each request.

What ProviderService.SubmitBatch / GetBatch / StreamBatchResults / CancelBatch do, without gRPC:
a submission is checked (ids, one provider, OpenAI one model, the documented limits) before
anything is sent; results are priced from each request's catalog model at the batch discount.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace

from costmesh.batch_limits import LIMITS, check_size
from costmesh.catalog import Catalog, ModelSpec
from costmesh.errors import InvalidRequest, Unavailable
from costmesh.services.providers.base import ProviderAdapter
from costmesh.services.providers.batches import (
    AnthropicBatches,
    BatchCall,
    BatchResult,
    BatchState,
    OpenAIBatches,
    ProviderBatchAPI,
)
from costmesh.services.providers.registry import SETUP_HINTS, validate

CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Anthropic's rule for custom_id; OpenAI takes it too


@dataclass(frozen=True)
class Submitted:
    provider: str
    batch_id: str  # "" when only validated
    payload_bytes: int
    requests: int


class BatchRegistry:
    def __init__(self, catalog: Catalog, apis: Mapping[str, ProviderBatchAPI]):
        self.catalog = catalog
        self._apis = dict(apis)

    @classmethod
    def from_adapters(cls, catalog: Catalog, adapters: Mapping[str, ProviderAdapter]) -> "BatchRegistry":
        """The batch APIs over the adapters' own SDK clients (closed with the adapters)."""
        apis: dict[str, ProviderBatchAPI] = {}
        anthropic = adapters.get("anthropic")
        if anthropic is not None:
            apis["anthropic"] = AnthropicBatches(anthropic.client, catalog.batch_discount, anthropic.breakpoints,
                                                 tenant_isolation=getattr(anthropic, "tenant_isolation", False))
        openai = adapters.get("openai")
        if openai is not None:
            apis["openai"] = OpenAIBatches(openai.client, catalog.batch_discount)
        return cls(catalog, apis)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted(self._apis))

    def serves(self, spec: ModelSpec) -> bool:
        return spec.provider in self._apis

    async def submit(self, calls: list[BatchCall], label: str, validate_only: bool = False) -> Submitted:
        provider, api = self._checked(calls)
        payload = api.payload(calls)
        check_size(provider, payload.requests, payload.size_bytes)
        span = trace.get_current_span()
        span.set_attribute("gen_ai.system", provider)
        span.set_attribute("costmesh.requests", payload.requests)
        span.set_attribute("costmesh.batch.payload_bytes", payload.size_bytes)
        if validate_only:
            return Submitted(provider, "", payload.size_bytes, payload.requests)
        batch_id = await api.submit(payload, label or "costmesh")
        span.set_attribute("costmesh.provider_batch_id", batch_id)
        return Submitted(provider, batch_id, payload.size_bytes, payload.requests)

    async def state(self, provider: str, batch_id: str) -> BatchState:
        return await self._api(provider, batch_id).state(batch_id)

    async def results(self, provider: str, batch_id: str, models: Mapping[str, str]) -> list[BatchResult]:
        api = self._api(provider, batch_id)
        specs = {}
        for custom_id, model in models.items():
            spec = self.catalog.model(model)  # InvalidRequest naming the model when unknown
            if spec.provider != provider:
                raise InvalidRequest(f"models[{custom_id!r}]: {model!r} is served by {spec.provider!r}, "
                                     f"not by {provider!r}")
            specs[custom_id] = spec
        return await api.results(batch_id, specs)

    async def cancel(self, provider: str, batch_id: str) -> None:
        await self._api(provider, batch_id).cancel(batch_id)

    def _api(self, provider: str, batch_id: str) -> ProviderBatchAPI:
        if not provider:
            raise InvalidRequest("provider: required")
        if not batch_id:
            raise InvalidRequest("batch_id: required")
        return self._configured(provider)

    def _configured(self, provider: str) -> ProviderBatchAPI:
        api = self._apis.get(provider)
        if api is None:
            if provider not in LIMITS:
                raise InvalidRequest(f"provider: {provider!r} has no batch API (batch APIs: {sorted(LIMITS)})")
            hint = SETUP_HINTS.get(provider, "")
            raise Unavailable(f"provider {provider!r} is not configured on this providers service; {hint}")
        return api

    def _checked(self, calls: list[BatchCall]) -> tuple[str, ProviderBatchAPI]:
        if not calls:
            raise InvalidRequest("requests: at least one request is required")
        seen: set[str] = set()
        providers, models = set(), set()
        for i, call in enumerate(calls):
            if not CUSTOM_ID.match(call.custom_id):
                raise InvalidRequest(f"requests[{i}].custom_id: 1 to 64 characters of letters, digits, _ and -")
            if call.custom_id in seen:
                raise InvalidRequest(f"requests[{i}].custom_id: {call.custom_id!r} appears twice")
            seen.add(call.custom_id)
            try:
                validate(call.messages, call.sampling)
            except InvalidRequest as exc:
                raise InvalidRequest(f"requests[{i}].{exc}") from None
            providers.add(call.model.provider)
            models.add(call.model.id)
        if len(providers) > 1:
            raise InvalidRequest(f"requests: one provider per batch, got {sorted(providers)}")
        (provider,) = providers
        if provider == "openai" and len(models) > 1:  # an OpenAI batch input file names one model
            raise InvalidRequest(f"requests: an OpenAI batch takes one model, got {sorted(models)}")
        return provider, self._configured(provider)
