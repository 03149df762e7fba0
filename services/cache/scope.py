"""What a cached answer may be shared across, and the keys derived from it.

An answer is reused only when tenant, system prompt, the conversation around the last user
message (tool calls and tool results included), model policy, the tools and response format
offered (`output_spec`, a digest) and sampling parameters are all equal (and the session id
when the request is session-scoped). They are hashed into one scope key. The query is the text of the
last user message; the exact tier keys on the scope key plus the normalised query.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

from costmesh.domain import Message, Role, Sampling
from costmesh.errors import InvalidRequest

_SPACES = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s.?!,;:…。？！]+$")


@dataclass(frozen=True)
class Scope:
    tenant_id: str
    session_id: str = ""
    session_scoped: bool = False
    model_policy: str = ""
    output_spec: str = ""  # digest of the tools, tool choice and response format ("": none)
    semantic_tool_answers: bool = False  # tool-calling answers and tool-result conversations: semantic tier too


@dataclass(frozen=True)
class ScopedQuery:
    """A request reduced to what the cache keys on."""

    tenant_id: str
    scope_key: str  # hex digest of everything but the query text
    query: str      # the last user message, as sent
    normalised: str
    session_id: str = ""  # set when the request is session-scoped (for invalidation by session)
    # The conversation carries tool calls or results, and the tenant did not opt in: exact tier only.
    exact_only: bool = False
    semantic_tool_answers: bool = False

    @property
    def entry_id(self) -> str:
        """The entry's id: the same for both tiers, so one id names one answer."""
        return entry_id_for(self.scope_key, self.normalised)


def normalise_query(text: str) -> str:
    """Lowercase, NFKC, collapse whitespace, strip trailing punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACES.sub(" ", text).strip()
    return _TRAILING_PUNCT.sub("", text)


def entry_id_for(scope_key: str, normalised_query: str) -> str:
    return hashlib.sha256(f"{scope_key}\n{normalised_query}".encode()).hexdigest()[:32]


def _message_fingerprint(message: Message) -> list:
    parts = []
    for part in message.parts:
        if part.image is not None:
            digest = hashlib.sha256(part.image.data).hexdigest() if part.image.data else ""
            parts.append({"image": [part.image.media_type, part.image.url, digest]})
        else:
            parts.append({"text": part.text or ""})
    fingerprint = [int(message.role), parts]
    if message.tool_calls or message.tool_call_id or message.is_error:  # only then: old keys stay as they were
        fingerprint.append({"calls": [[c.id, c.name, c.arguments] for c in message.tool_calls],
                            "answers": message.tool_call_id, "error": message.is_error})
    return fingerprint


def _sampling_fingerprint(sampling: Sampling) -> dict:
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop),
        "seed": sampling.seed,
    }


def scope_query(scope: Scope, messages: tuple[Message, ...] | list[Message], sampling: Sampling) -> ScopedQuery:
    """Reduce a request to its scope key and query. Raises InvalidRequest when it has neither."""
    if not scope.tenant_id:
        raise InvalidRequest("scope.tenant_id: required")
    if scope.session_scoped and not scope.session_id:
        raise InvalidRequest("scope.session_id: required when scope.session_scoped is set")
    last_user = None
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == Role.USER:
            last_user = index
            break
    if last_user is None:
        raise InvalidRequest("messages: no user message to look up")
    query_message = messages[last_user]
    system = [m.text for m in messages if m.role == Role.SYSTEM]
    context = [_message_fingerprint(m) for i, m in enumerate(messages) if i != last_user and m.role != Role.SYSTEM]
    # Images in the query message change the answer: they belong to the scope.
    query_images = [p for p in _message_fingerprint(query_message)[1] if "image" in p]
    material = {
        "v": 1,
        "tenant": scope.tenant_id,
        "session": scope.session_id if scope.session_scoped else None,
        "model_policy": scope.model_policy,
        "system": system,
        "context": context,
        "position": last_user,
        "query_images": query_images,
        "sampling": _sampling_fingerprint(sampling),
    }
    if scope.output_spec:  # only then: keys of requests without tools stay as they were
        material["output_spec"] = scope.output_spec
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    scope_key = hashlib.sha256(blob.encode()).hexdigest()[:32]
    query = query_message.text
    tooled = any(m.tool_calls or m.role == Role.TOOL for m in messages)
    return ScopedQuery(scope.tenant_id, scope_key, query, normalise_query(query),
                       scope.session_id if scope.session_scoped else "",
                       exact_only=tooled and not scope.semantic_tool_answers,
                       semantic_tool_answers=scope.semantic_tool_answers)
