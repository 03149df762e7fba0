"""Where Anthropic prompt-cache breakpoints go, and with which TTL.

`AutoBreakpoints` marks the end of the stable parts of a prompt, in the order Anthropic
caches it (system, then the messages): the system prompt, long shared context (a long part
followed by more of the prompt, e.g. a RAG document before the question) and the
conversation so far (the end of the message before the last one). At most 4 in all, the
client's own breakpoints first, and only where the prefix reaches the model's minimum
cacheable length (`ModelSpec.min_cacheable_tokens`): a shorter prefix is never cached, so a
mark there would buy nothing.

The TTL is chosen by expected reuse, from a record of recently seen prefixes per tenant
(`ReuseTracker`) and the model's multipliers: with r reuses expected in the next hour, g
apart, a 5-minute entry costs w5 once and again every time g exceeds 5 minutes; a 1-hour
entry costs w1h once and reads after. 1h is chosen when it costs less. 1h marks always
precede 5m ones, as the API requires.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from costmesh.catalog import ModelSpec
from costmesh.domain import Message, Part, Role
from costmesh.tokens import get_counter

MAX_BREAKPOINTS = 4  # Anthropic rejects a request with more cache_control blocks
TTL_5M, TTL_1H = "5m", "1h"
TTL_SECONDS = {TTL_5M: 300.0, TTL_1H: 3600.0}
LONG_CONTEXT_TOKENS = 1024  # a part at least this long, followed by more prompt, is shared context

# (message index, part index) of a part that gets `cache_control` after it.
Breakpoint = tuple[int, int]


class BreakpointPolicy(Protocol):
    def place(self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "") -> Mapping[Breakpoint, str]:
        """The parts to mark with `cache_control: {"type": "ephemeral", "ttl": <value>}`."""
        ...


class ClientBreakpoints:
    """Only the breakpoints the client placed (`Part.cache_breakpoint`), the last four at most, 5m TTL.

    The last ones are kept because a later breakpoint covers a longer prefix.
    """

    def place(self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "") -> dict[Breakpoint, str]:
        return {bp: TTL_5M for bp in client_marks(messages)}


def client_marks(messages: tuple[Message, ...]) -> list[Breakpoint]:
    marked = [
        (m, p) for m, message in enumerate(messages) for p, part in enumerate(message.parts) if part.cache_breakpoint
    ]
    return marked[-MAX_BREAKPOINTS:]


# -- reuse record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reuse:
    """What the record says about one prefix when it is seen again."""

    recent_uses: int  # sightings in the last hour before this one
    mean_gap_s: float | None  # mean time between sightings in that hour (None: first sighting)


class ReuseTracker:
    """Recently seen prefix digests per tenant, with when they were seen (the last hour, bounded)."""

    def __init__(self, max_prefixes: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self._max = max_prefixes
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def observe(self, tenant_id: str, digest: str) -> Reuse:
        now = self._clock()
        key = (tenant_id, digest)
        times = self._seen.pop(key, None) or deque(maxlen=256)
        while times and now - times[0] > TTL_SECONDS[TTL_1H]:
            times.popleft()
        reuse = Reuse(len(times), (now - times[0]) / len(times) if times else None)
        times.append(now)
        self._seen[key] = times
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return reuse

    def __len__(self) -> int:
        return len(self._seen)


def choose_ttl(model: ModelSpec, reuse: Reuse) -> str:
    """5m or 1h by break-even over the next hour, in units of the prefix's input price."""
    expected = reuse.recent_uses  # reuses expected in the next hour: as many as in the last one
    if not expected or reuse.mean_gap_s is None:
        return TTL_5M
    gap = reuse.mean_gap_s
    per_use_5m = model.cache_read if gap <= TTL_SECONDS[TTL_5M] else model.cache_write_5m
    per_use_1h = model.cache_read if gap <= TTL_SECONDS[TTL_1H] else model.cache_write_1h
    cost_5m = model.cache_write_5m + expected * per_use_5m
    cost_1h = model.cache_write_1h + expected * per_use_1h
    return TTL_1H if cost_1h < cost_5m else TTL_5M


def ordered(ttls: list[str]) -> list[str]:
    """TTLs in prompt order, raised where needed so that no 1h mark follows a 5m one (an API rule)."""
    out = list(ttls)
    for i in range(len(out) - 2, -1, -1):
        if out[i + 1] == TTL_1H:
            out[i] = TTL_1H
    return out


# -- automatic placement -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    at: Breakpoint
    role: Role
    tokens: int
    end: int  # prompt tokens up to and including this part
    digest: str  # of the prefix ending with this part


@functools.lru_cache(maxsize=128)
def _count(text: str) -> int:
    return get_counter().count(text)


def _part_tokens(part: Part) -> int:
    if part.image is None:
        return _count(part.text or "")
    image = part.image  # counted the way the block is sent: compact JSON of the image block
    source = (
        {"data": base64.b64encode(image.data).decode("ascii"), "media_type": image.media_type, "type": "base64"}
        if image.data
        else {"type": "url", "url": image.url}
    )
    return _count(json.dumps({"source": source, "type": "image"}, sort_keys=True, separators=(",", ":")))


def layout(messages: tuple[Message, ...]) -> list[_Slot]:
    """Every part in the order Anthropic caches the prompt (system first), with running token totals."""
    counter = get_counter()
    order = [(m, msg) for m, msg in enumerate(messages) if msg.role == Role.SYSTEM]
    order += [(m, msg) for m, msg in enumerate(messages) if msg.role != Role.SYSTEM]
    slots: list[_Slot] = []
    total, system_opened = 0, False
    digest = hashlib.sha256(b"costmesh-prefix-v1")
    for m, message in order:
        for p, part in enumerate(message.parts):
            overhead = 0
            if message.role == Role.SYSTEM:
                if not system_opened:
                    overhead, system_opened = counter.message_overhead("system"), True
            elif p == 0:
                overhead = counter.message_overhead("user" if message.role == Role.USER else "assistant")
            tokens = overhead + _part_tokens(part)
            total += tokens
            digest.update(f"\x00{int(message.role)}:{p}:".encode())
            digest.update((part.text or "").encode() if part.image is None else repr(part.image).encode())
            slots.append(_Slot((m, p), message.role, tokens, total, digest.hexdigest()))
    return slots


class AutoBreakpoints:
    """Breakpoints at the end of the stable parts, TTL by expected reuse; the client's own kept."""

    def __init__(self, tracker: ReuseTracker | None = None):
        self.tracker = tracker if tracker is not None else ReuseTracker()

    def place(self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "") -> dict[Breakpoint, str]:
        slots = layout(messages)
        by_at = {slot.at: slot for slot in slots}
        client = client_marks(messages)
        auto = [s for s in self.candidates(slots) if s.end >= model.min_cacheable_tokens and s.at not in client]
        room = MAX_BREAKPOINTS - len(client)
        if len(auto) > room:
            auto = (auto[:1] + auto[len(auto) - room + 1 :]) if room > 1 else auto[-room:] if room else []
        chosen = sorted({*(by_at[at] for at in client), *auto}, key=lambda s: s.end)
        ttls = [choose_ttl(model, self.tracker.observe(f"{tenant_id}\x00{model.id}", s.digest)) for s in chosen]
        return {slot.at: ttl for slot, ttl in zip(chosen, ordered(ttls))}

    @staticmethod
    def candidates(slots: list[_Slot]) -> list[_Slot]:
        """Ends of the stable parts, in prompt order: system prompt, long shared context, conversation so far."""
        if not slots:
            return []
        out: dict[Breakpoint, _Slot] = {}
        system = [s for s in slots if s.role == Role.SYSTEM]
        if system:
            out[system[-1].at] = system[-1]
        for slot in slots[:-1]:
            if slot.role != Role.SYSTEM and slot.tokens >= LONG_CONTEXT_TOKENS:
                out[slot.at] = slot
        turns = [s for s in slots if s.role != Role.SYSTEM]
        last_message = turns[-1].at[0] if turns else None
        history = [s for s in turns if s.at[0] != last_message]
        if history:
            out[history[-1].at] = history[-1]
        return sorted(out.values(), key=lambda s: s.end)
