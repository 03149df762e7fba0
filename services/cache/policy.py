"""Which requests may be served from the cache and which answers are worth storing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from costmesh.domain import Sampling

# Natural ends of a generation. "length"/"max_tokens" (truncated), "content_filter" and a missing
# reason are not stored; "tool_use" only when the answer carries its tool calls.
COMPLETE_FINISH_REASONS = frozenset({"stop", "end_turn", "stop_sequence"})
TOOL_USE = "tool_use"

_REFUSAL = re.compile(
    r"^\s*(?:i['’]m sorry|sorry|i apologi[sz]e|unfortunately)?[,.!\s]*(?:but\s+)?"
    r"(?:i\s+(?:can(?:not|['’]t| not)|won['’]t|am unable to|['’]m unable to|am not able to|['’]m not able to)"
    r"\s+(?:help|assist|provide|comply|do that|answer|fulfil|fulfill|support|share|create|generate|write)"
    r"|as an ai(?: language model)?,? i (?:can(?:not|['’]t)|don['’]t|do not|am not))",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """A refusal opening ("I'm sorry, but I can't help with that", "As an AI, I cannot ...")."""
    return bool(_REFUSAL.match(text[:300]))


@dataclass(frozen=True)
class CachePolicy:
    """`allow_sampled`: serve and store requests with temperature > 0 (off by default: a caller
    who asks for sampling asks for a fresh answer). `tenants` overrides per tenant:
    `{"tenant": {"allow_sampled": true, "ttl_s": 3600}}`; consent to shadow checks is per tenant
    only (`shadow_rate`, `keep_shadow_pairs`: off unless a tenant's policy says so)."""

    allow_sampled: bool = False
    ttl_s: int = 86_400
    tenants: dict = field(default_factory=dict)

    def _tenant(self, tenant_id: str) -> dict:
        return self.tenants.get(tenant_id) or {}

    def ttl_for(self, tenant_id: str, requested_s: int = 0) -> int:
        """The request's TTL when it sets one, else the tenant's, else the default."""
        if requested_s > 0:
            return requested_s
        return int(self._tenant(tenant_id).get("ttl_s", self.ttl_s))

    def shadow_rate(self, tenant_id: str) -> float:
        """The share of the tenant's semantic hits to shadow-check: 0 unless it consented."""
        return float(self._tenant(tenant_id).get("shadow_rate", 0.0))

    def keeps_shadow_pairs(self, tenant_id: str) -> bool:
        """Whether the tenant consented to keeping its labelled shadow pairs (for retraining)."""
        return self.shadow_rate(tenant_id) > 0 and bool(self._tenant(tenant_id).get("keep_shadow_pairs", False))

    def lookup_refusal(self, sampling: Sampling, tenant_id: str = "") -> str:
        """Why a request is not cacheable, or "" when it is."""
        allowed = bool(self._tenant(tenant_id).get("allow_sampled", self.allow_sampled))
        if not allowed and sampling.temperature is not None and sampling.temperature > 0:
            return "temperature > 0"
        return ""

    def store_refusal(self, sampling: Sampling, text: str, finish_reason: str, quality_passed: bool,
                      tenant_id: str = "", tool_calls: int = 0) -> str:
        """Why an answer must not be stored, or "" when it may be. `tool_calls`: how many calls it makes."""
        reason = self.lookup_refusal(sampling, tenant_id)
        if reason:
            return f"not cacheable: {reason}"
        if tool_calls:
            if finish_reason != TOOL_USE:
                return f"finish_reason {finish_reason or '(missing)'!r} with tool calls is not a complete answer"
            return "" if quality_passed else "quality gate not passed"
        if not text.strip():
            return "empty answer"
        if finish_reason not in COMPLETE_FINISH_REASONS:
            return f"finish_reason {finish_reason or '(missing)'!r} is not a complete answer"
        if not quality_passed:
            return "quality gate not passed"
        if is_refusal(text):
            return "refusal"
        return ""
