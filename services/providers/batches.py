"""The providers' batch APIs through the official SDKs (the provider adapters' clients).

Served as ProviderService.SubmitBatch / GetBatch / StreamBatchResults / CancelBatch (see
`batch_registry`): the provider keys stay in this service.

Anthropic: Message Batches (`messages.batches.create / retrieve / results / cancel`), each
request's `params` built exactly like an interactive call (automatic cache breakpoints; a
prefix the batch shares among its requests at 1-hour TTL: a batch can run for hours). OpenAI: a JSONL input file
(`files.create`, purpose "batch") and `batches.create` on /v1/chat/completions with the
"24h" window; answers come back in the output and error files. Every answer is priced from
the usage the provider returns, at the catalog's batch discount.

Tools and the answer's format go into each request as for an interactive call, and answers
come back with their tool calls; the one difference: Anthropic's JSON mode is the system
instruction without the "{" prefill (a result is read without its request, so the brace could
not be put back).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import openai

from costmesh.batch_limits import COMPLETION_WINDOW
from costmesh.catalog import ModelSpec
from costmesh.domain import Generation, Message, Sampling
from costmesh.output_spec import OutputSpec
from costmesh.services.providers import anthropic_adapter, openai_adapter
from costmesh.services.providers.anthropic_content import TOOLS, offered_tools, tenant_scoped
from costmesh.services.providers.base import priced
from costmesh.services.providers.cache_breakpoints import (
    TTL_1H,
    AutoBreakpoints,
    BreakpointPolicy,
    layout,
    ordered,
)
from costmesh.services.providers.sdk_errors import map_sdk_error

OPENAI_ENDPOINT = "/v1/chat/completions"
# How a request of a batch ended (BatchResult.status)
SUCCEEDED, ERRORED, CANCELED, EXPIRED = "succeeded", "errored", "canceled", "expired"


@dataclass(frozen=True)
class BatchCall:
    custom_id: str
    model: ModelSpec
    messages: tuple[Message, ...]
    sampling: Sampling
    tenant_id: str
    output: OutputSpec = OutputSpec()  # the tools offered and the answer's format


@dataclass
class BatchResult:
    custom_id: str
    status: str  # succeeded | errored | canceled | expired
    generation: Generation | None = None
    error: str = ""


@dataclass(frozen=True)
class BatchState:
    ended: bool  # the provider is done with it: its results can be read
    provider_status: str  # the provider's own word for where it stands


@dataclass(frozen=True)
class Payload:
    body: Any
    size_bytes: int
    requests: int


class ProviderBatchAPI(Protocol):
    name: str

    def payload(self, calls: list[BatchCall]) -> Payload: ...

    async def submit(self, payload: Payload, label: str) -> str: ...

    async def state(self, batch_id: str) -> BatchState: ...

    async def ended(self, batch_id: str) -> bool: ...

    async def results(self, batch_id: str, models: Mapping[str, ModelSpec]) -> list[BatchResult]: ...

    async def cancel(self, batch_id: str) -> None: ...


class _Fixed:
    """Breakpoints decided beforehand (a policy that returns them)."""

    def __init__(self, marks: dict):
        self._marks = marks

    def place(self, model, messages, tenant_id="", tools=()):
        return self._marks


def batch_breakpoints(policy: BreakpointPolicy, calls: list[BatchCall], tenant_isolation: bool = False) -> list[dict]:
    """The adapter's placement for each call; a prefix the batch itself reuses gets the 1-hour TTL.

    A batch's requests run over minutes to hours, so a shared prefix written at 5 minutes may be
    gone before the next request that needs it; one used once keeps the placement's own TTL.
    `tenant_isolation`: placed on the prompt as `build_request` sends it then (`tenant_scoped`).
    """
    placed, uses = [], Counter()
    for call in calls:
        messages = tenant_scoped(call.messages, call.tenant_id) if tenant_isolation else call.messages
        tools = offered_tools(call.output, messages)
        marks = policy.place(call.model, messages, call.tenant_id, tools)
        if tenant_isolation:
            marks = {at: ttl for at, ttl in marks.items() if at[0] != TOOLS}
        order = {slot.at: (i, slot.digest) for i, slot in enumerate(layout(messages, tools))} if marks else {}
        keys = {at: (call.model.id, order[at][1]) for at in marks}
        uses.update(keys.values())
        placed.append((marks, keys, order))
    out = []
    for marks, keys, order in placed:
        ats = sorted(marks, key=lambda at: order[at][0])
        ttls = ordered([TTL_1H if uses[keys[at]] > 1 else marks[at] for at in ats])
        out.append(dict(zip(ats, ttls)))
    return out


class AnthropicBatches:
    name = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic, discount: float, breakpoints: BreakpointPolicy | None = None,
                 *, tenant_isolation: bool = False):
        self._client = client
        self._discount = discount
        self._breakpoints = breakpoints or AutoBreakpoints()
        self._tenant_isolation = tenant_isolation  # as the adapter's (`AnthropicAdapter.tenant_isolation`)

    def payload(self, calls: list[BatchCall]) -> Payload:
        requests = []
        for call, marks in zip(calls, batch_breakpoints(self._breakpoints, calls, self._tenant_isolation)):
            kwargs = anthropic_adapter.build_request(
                call.model, call.messages, call.sampling, _Fixed(marks), call.tenant_id, call.output, prefill=False,
                tenant_isolation=self._tenant_isolation,
            )
            params = {**{k: v for k, v in kwargs.items() if k != "extra_body"}, **kwargs.get("extra_body", {})}
            requests.append({"custom_id": call.custom_id, "params": params})
        size = len(json.dumps({"requests": requests}, separators=(",", ":")).encode())
        return Payload(requests, size, len(requests))

    async def submit(self, payload: Payload, label: str) -> str:
        try:
            batch = await self._client.messages.batches.create(requests=payload.body)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, self.name, "message batch") from exc
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        try:
            batch = await self._client.messages.batches.retrieve(batch_id)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, self.name, batch_id) from exc
        return BatchState(batch.processing_status == "ended", batch.processing_status)

    async def ended(self, batch_id: str) -> bool:
        return (await self.state(batch_id)).ended

    async def results(self, batch_id: str, models: Mapping[str, ModelSpec]) -> list[BatchResult]:
        out: list[BatchResult] = []
        try:
            async for line in await self._client.messages.batches.results(batch_id):
                result = line.result
                if result.type == "succeeded":
                    message = result.message
                    text, tool_calls = anthropic_adapter.answer_of(message.content)
                    generation = priced(
                        models[line.custom_id],
                        text=text,
                        usage=anthropic_adapter.usage_of(message.usage),
                        finish_reason=anthropic_adapter.finish_reason(message.stop_reason),
                        request_id=message.id,
                        batch_discount=self._discount,
                        tool_calls=tool_calls,
                    )
                    out.append(BatchResult(line.custom_id, SUCCEEDED, generation))
                elif result.type == "errored":
                    error = getattr(result.error, "error", None)
                    detail = getattr(error, "message", None) or str(result.error)
                    out.append(BatchResult(line.custom_id, ERRORED, error=f"anthropic: {detail}"))
                else:
                    out.append(BatchResult(line.custom_id, CANCELED if result.type == "canceled" else EXPIRED))
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, self.name, batch_id) from exc
        return out

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._client.messages.batches.cancel(batch_id)
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, anthropic, self.name, batch_id) from exc


class OpenAIBatches:
    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI, discount: float):
        self._client = client
        self._discount = discount

    def payload(self, calls: list[BatchCall]) -> Payload:
        lines = []
        for call in calls:
            body = openai_adapter.build_request(call.model, call.messages, call.sampling, call.tenant_id, call.output)
            line = {"custom_id": call.custom_id, "method": "POST", "url": OPENAI_ENDPOINT, "body": body}
            lines.append(json.dumps(line, separators=(",", ":")))
        content = ("\n".join(lines) + "\n").encode()
        return Payload(content, len(content), len(lines))

    async def submit(self, payload: Payload, label: str) -> str:
        try:
            uploaded = await self._client.files.create(file=(f"{label}.jsonl", payload.body), purpose="batch")
            batch = await self._client.batches.create(
                input_file_id=uploaded.id,
                endpoint=OPENAI_ENDPOINT,
                completion_window=COMPLETION_WINDOW,
                metadata={"costmesh_batch": label},
            )
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, self.name, "batch") from exc
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        status = (await self._retrieve(batch_id)).status
        return BatchState(status in ("completed", "failed", "expired", "cancelled"), status)

    async def ended(self, batch_id: str) -> bool:
        return (await self.state(batch_id)).ended

    async def results(self, batch_id: str, models: Mapping[str, ModelSpec]) -> list[BatchResult]:
        batch = await self._retrieve(batch_id)
        if batch.status == "failed":
            reasons = "; ".join(e.message or e.code or "" for e in (batch.errors.data if batch.errors else []) or [])
            return [BatchResult(cid, ERRORED, error=f"openai: batch failed: {reasons}") for cid in models]
        seen: dict[str, BatchResult] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                content = await self._client.files.content(file_id)
            except openai.OpenAIError as exc:
                raise map_sdk_error(exc, openai, self.name, file_id) from exc
            for raw in content.text.splitlines():
                if raw.strip():
                    result = self._line(json.loads(raw), models)
                    seen[result.custom_id] = result
        missing = EXPIRED if batch.status == "expired" else CANCELED if batch.status == "cancelled" else ERRORED
        return [seen.get(cid) or BatchResult(cid, missing, error="openai: no result") for cid in models]

    def _line(self, line: dict[str, Any], models: Mapping[str, ModelSpec]) -> BatchResult:
        custom_id = line.get("custom_id", "")
        error, response = line.get("error"), line.get("response")
        if error:
            code = error.get("code", "")
            status = EXPIRED if code == "batch_expired" else CANCELED if code == "batch_cancelled" else ERRORED
            return BatchResult(custom_id, status, error=f"openai: {error.get('message', code)}")
        if not response or response.get("status_code") != 200:
            body = (response or {}).get("body") or {}
            detail = (body.get("error") or {}).get("message", "no response")
            return BatchResult(
                custom_id, ERRORED, error=f"openai (HTTP {(response or {}).get('status_code')}): {detail}"
            )
        body = response["body"]
        if not body.get("choices"):
            return BatchResult(custom_id, ERRORED, error="openai: response has no choices")
        choice = body["choices"][0]
        message = choice.get("message") or {}
        refusal = message.get("refusal")
        generation = priced(
            models[custom_id],
            text=message.get("content") or refusal or "",
            usage=openai_adapter.usage_of(body.get("usage") or {}),
            finish_reason="refusal" if refusal else openai_adapter.finish_reason(choice.get("finish_reason")),
            request_id=body.get("id", ""),
            batch_discount=self._discount,
            tool_calls=openai_adapter.tool_calls_of(message),
        )
        return BatchResult(custom_id, SUCCEEDED, generation)

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._client.batches.cancel(batch_id)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, self.name, batch_id) from exc

    async def _retrieve(self, batch_id: str):
        try:
            return await self._client.batches.retrieve(batch_id)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, openai, self.name, batch_id) from exc

