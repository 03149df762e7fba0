"""One cost record per request, appended to JSON-lines files that survive a restart.

Why files: a record is written once and never changed, so an append-only log is the whole
storage need; it costs no extra service, survives restarts and crashes (a torn last line is
skipped when read), is readable with `jq`, and ships to any log pipeline. Redis is the wrong
home (docker-compose runs it without persistence, as a cache should be) and SQLite locks
badly when several gateway replicas share a volume. Each writer (one per gateway process)
has its own file per UTC day, `costs-YYYY-MM-DD-<host>-<pid>.jsonl`, so replicas never
interleave lines; the reader merges every file in the directory.

Each record names the API key the request came with by its id (`key_id`, the `<key id>` part of
`cm_<key id>_<secret>`), never by the key itself: the gateway binds it (`bind_key_id`) when it
authenticates the call, for the context that serves it, and the recorder reads it back. Records
written before there was a key id, or with authentication off, have `key_id` "".

A record is a request's (`kind` "request") or a shadow check's (`kind` "shadow"): a model call the
gateway made in the background and its judgement, billed to the tenant as its own line. A shadow
line has no baseline and counts as no request. `check` says which:
- "cache" (or "" in older records): a semantic cache hit checked against a fresh answer
  (`record_of_shadow`); a cost of the cache layer (`savings["cache"]` is minus it), `verdict`
  "same" or "different";
- "routing": a cheap answer the router served checked against the premium model's
  (`record_of_routing_check`); a cost of the routing layer, `verdict` "as_good" or "worse",
  `checked_tier` the tier of the answer checked.
`verdict` is "" when the judge could not decide.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.router.v1 import router_pb2
from costmesh.errors import CostmeshError
from costmesh.vocabulary import start_tier

LAYERS = ("cache", "routing", "prompt_caching", "batch", "inference")
FILE_GLOB = "costs-*.jsonl"
MAX_KEY_ID_CHARS = 64
# The id of the API key of the call being served (per asyncio task, like the log context's request).
_KEY_ID: ContextVar[str] = ContextVar("costmesh_key_id", default="")


def bind_key_id(key_id: str) -> None:
    """The id of the API key (never the key) that authenticated the call served in this context;
    "" when authentication is off. The call's task sets it before the pipeline runs."""
    _KEY_ID.set(key_id[:MAX_KEY_ID_CHARS])


def bound_key_id() -> str:
    return _KEY_ID.get()


@dataclass
class CostRecord:
    ts: float  # unix seconds
    request_id: str
    tenant_id: str
    outcome: str  # "answered" or the error type, e.g. "UpstreamError"
    cache: str = "none"  # miss, exact_hit, semantic_hit, bypassed, unavailable
    provider: str = ""
    model: str = ""
    tier: str = ""  # served tier; "" when cached or failed
    classified_tier: str = ""  # what the classifier said
    start_tier: str = ""  # where the cascade started: classified_tier raised to min_tier, capped at max_tier
    score: float = 0.0
    attempts: int = 0
    similarity: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    saving_usd: float = 0.0
    savings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0.0))
    error: str = ""
    session_id: str = ""
    key_id: str = ""  # the API key's id (never the key); "" with authentication off
    kind: str = "request"  # "request", or "shadow": a shadow check (its own cost line)
    verdict: str = ""  # shadow lines: "same"/"different" (cache), "as_good"/"worse" (routing), "" when not judged
    judge_usd: float = 0.0  # shadow lines: what the judgement cost (in cost_usd too)
    check: str = ""  # shadow lines: "cache" ("" in older ones) or "routing"
    checked_tier: str = ""  # routing checks: the tier of the cheap answer checked

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def shadow(self) -> bool:
        return self.kind == "shadow"

    @property
    def routing_check(self) -> bool:
        """A shadow check of a cheap answer against the premium model's (else of a cache hit)."""
        return self.kind == "shadow" and self.check == "routing"

    @property
    def cached(self) -> bool:
        return self.cache in ("exact_hit", "semantic_hit")

    @classmethod
    def from_dict(cls, data: dict) -> CostRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def _tier(value: int) -> str:
    return common.Tier.Name(value).removeprefix("TIER_").lower() if value else ""


def record_of_answer(request: gw.CompleteRequest, response: gw.CompleteResponse, ts: float,
                     key_id: str = "") -> CostRecord:
    usage = response.usage
    return CostRecord(
        ts=ts,
        request_id=response.request_id,
        tenant_id=request.tenant_id,
        session_id=request.session_id,
        key_id=key_id,
        outcome="answered",
        cache=gw.CacheStatus.Name(response.cache_status).removeprefix("CACHE_STATUS_").lower(),
        provider=response.provider,
        model=response.model,
        tier="" if response.cached else _tier(response.tier),
        classified_tier="" if response.cached else _tier(response.classified_tier),
        start_tier="" if response.cached else _tier(start_tier(request.routing, response.classified_tier)),
        score=response.complexity_score,
        attempts=response.attempts,
        similarity=response.cache_similarity,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=response.cost.total_usd,
        baseline_usd=response.baseline_cost_usd,
        saving_usd=response.saving_usd,
        savings={layer: getattr(response.savings, f"{layer}_usd") for layer in LAYERS},
    )


def record_of_error(request: gw.CompleteRequest, error: CostmeshError, ts: float,
                    key_id: str = "") -> CostRecord:
    """A failed request: no answer, so nothing billed to it at the gateway and no baseline."""
    return CostRecord(
        ts=ts,
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        session_id=request.session_id,
        key_id=key_id,
        outcome=type(error).__name__,
        error=str(error)[:500],
    )


def record_of_shadow(request: gw.CompleteRequest, request_id: str, fresh: router_pb2.ExecuteResponse,
                     judge_usd: float, verdict: str, ts: float, key_id: str = "",
                     similarity: float = 0.0) -> CostRecord:
    """A shadow check of the semantic hit that answered `request_id`: the fresh call and the
    judgement, as their own line. No baseline (nobody would have paid for it without costmesh);
    its cost is the cache layer's."""
    return _check_record(request, request_id, fresh, judge_usd, verdict, ts, key_id, check="cache",
                         cache="semantic_hit", similarity=similarity)


def record_of_routing_check(request: gw.CompleteRequest, request_id: str, premium: router_pb2.ExecuteResponse,
                            judge_usd: float, verdict: str, ts: float, key_id: str = "", *,
                            checked_tier: str = "", score: float = 0.0) -> CostRecord:
    """A shadow check of the cheap answer that answered `request_id`: the premium model's call and
    the judgement, as their own line. No baseline; its cost is the routing layer's."""
    return _check_record(request, request_id, premium, judge_usd, verdict, ts, key_id, check="routing",
                         cache="none", score=score, checked_tier=checked_tier)


def _check_record(request: gw.CompleteRequest, request_id: str, call: router_pb2.ExecuteResponse, judge_usd: float,
                  verdict: str, ts: float, key_id: str, *, check: str, cache: str, similarity: float = 0.0,
                  score: float = 0.0, checked_tier: str = "") -> CostRecord:
    """A shadow check's line: the model call it made and its judge, a cost of the layer it checks."""
    usage = call.usage
    cost = call.cost.total_usd + judge_usd
    return CostRecord(
        ts=ts,
        request_id=request_id,
        tenant_id=request.tenant_id,
        session_id=request.session_id,
        key_id=key_id,
        outcome="answered",
        cache=cache,
        provider=call.provider,
        model=call.model,
        tier=_tier(call.tier),
        score=score,
        attempts=len(call.attempts),
        similarity=similarity,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=cost,
        saving_usd=-cost,
        savings={**dict.fromkeys(LAYERS, 0.0), check: -cost},
        kind="shadow",
        verdict=verdict,
        judge_usd=judge_usd,
        check=check,
        checked_tier=checked_tier,
    )


class CostRecorder:
    """An `AnswerObserver` appending one JSON line per request under `directory`."""

    def __init__(self, directory: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 writer_id: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._writer_id = writer_id or f"{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._day = ""
        self._fd: int | None = None

    def on_answer(self, request: gw.CompleteRequest, response: gw.CompleteResponse) -> None:
        self.write(record_of_answer(request, response, self._clock(), bound_key_id()))

    def on_error(self, request: gw.CompleteRequest, error: CostmeshError) -> None:
        self.write(record_of_error(request, error, self._clock(), bound_key_id()))

    def write(self, record: CostRecord) -> None:
        line = (json.dumps(asdict(record), separators=(",", ":")) + "\n").encode()
        day = datetime.fromtimestamp(record.ts, UTC).strftime("%Y-%m-%d")
        with self._lock:
            if day != self._day or self._fd is None:
                self._close()
                path = self.directory / f"costs-{day}-{self._writer_id}.jsonl"
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._day = day
            os.write(self._fd, line)  # one write per line: whole lines, in the page cache at once

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close()


def read_records(directory: str | os.PathLike, since: float | None = None,
                 until: float | None = None) -> Iterator[CostRecord]:
    """Every record in `directory` (and its subdirectories) with since <= ts < until, in file
    order (not sorted)."""
    directory = Path(directory)
    first_day = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d") if since is not None else ""
    last_day = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d") if until is not None else "9999"
    for path in sorted(directory.rglob(FILE_GLOB)):
        day = path.name[len("costs-"):len("costs-") + 10]
        if day < first_day or day > last_day:
            continue
        with path.open("rb") as handle:
            for raw in handle:
                try:
                    record = CostRecord.from_dict(json.loads(raw))
                except (ValueError, TypeError):
                    continue  # a line torn by a crash
                if since is not None and record.ts < since:
                    continue
                if until is not None and record.ts >= until:
                    continue
                yield record
