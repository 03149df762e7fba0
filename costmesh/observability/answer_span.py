"""The gateway span's attributes for the whole answer, and the opt-in content log.

`AnswerSpan` is an `AnswerObserver`: called inside the gateway's server span, it adds what
the request came to (GenAI usage, tier, score, cache status and similarity, attempts, cost,
baseline, saving per layer) so one span in Jaeger tells the request's whole bill. A failed
request's span gets the error type.

`ContentLog` logs the prompt and the answer only when the operator turns it on
(`COSTMESH_LOG_CONTENT=true`); by default no prompt or answer text is ever logged.
"""

from __future__ import annotations

import structlog
from opentelemetry import trace

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.errors import CostmeshError
from costmesh.observability.gateway_metrics import LAYERS, cache_label
from costmesh.vocabulary import tier_name

log = structlog.get_logger()


class AnswerSpan:
    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        usage = response.usage
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
            "costmesh.request_id": response.request_id,
            "costmesh.cache.status": cache_label(response.cache_status),
            "costmesh.cache.hit": response.cached,
            "costmesh.attempts": response.attempts,
            "costmesh.saving_usd": response.saving_usd,
        }
        if response.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [response.finish_reason]
        if response.provider:
            attributes["gen_ai.provider.name"] = response.provider
        if response.cached:
            attributes["costmesh.cache.similarity"] = response.cache_similarity
        else:
            attributes["costmesh.tier"] = tier_name(response.tier)
            attributes["costmesh.classified_tier"] = tier_name(response.classified_tier)
            attributes["costmesh.complexity_score"] = response.complexity_score
        for layer in LAYERS:
            attributes[f"costmesh.saving.{layer}_usd"] = getattr(response.savings, f"{layer}_usd")
        span.set_attributes(attributes)

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        span = trace.get_current_span()
        span.set_attribute("error.type", type(error).__name__)
        span.set_attribute("costmesh.cost_usd", 0.0)


class ContentLog:
    """Logs prompt and answer text; mounted only when COSTMESH_LOG_CONTENT is on."""

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        log.info("content", prompt=_prompt_text(request), answer=response.text)

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        log.info("content", prompt=_prompt_text(request), error=str(error))


def _prompt_text(request: gw.CompleteRequest) -> list[dict[str, str]]:
    return [
        {"role": common.Role.Name(m.role).removeprefix("ROLE_").lower(),
         "text": "".join(part.text for part in m.content if part.WhichOneof("kind") == "text")}
        for m in request.messages
    ]
