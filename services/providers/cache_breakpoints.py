"""Where Anthropic prompt-cache breakpoints go, and with which TTL.

`AutoBreakpoints` marks the end of the stable parts of a prompt, in the order Anthropic
caches it (tool definitions, system, then the messages): the system prompt (or the last tool
definition when there is no system prompt), long shared context (a long block followed by
more of the prompt, e.g. a RAG document before the question, or a long tool result) and the
conversation so far (the end of the turn before the last one; a run of tool results is one
turn). At most 4 in all, the client's own breakpoints first (`Part.cache_breakpoint`,
`Tool.cache_breakpoint`), and only where the prefix reaches the model's minimum cacheable
length (`ModelSpec.min_cacheable_tokens`): a shorter prefix is never cached, so a mark there
would buy nothing. Blocks are counted as `costmesh.tokens` counts them (a tool definition or
a tool call as its compact JSON), an image by its pixels as Anthropic bills it (`image_tokens`).

The TTL is chosen by expected reuse, from a record of recently seen prefixes per tenant
(`ReuseTracker`) and the model's multipliers: with r reuses expected in the next hour, g
apart, a 5-minute entry costs w5 once and again every time g exceeds 5 minutes; a 1-hour
entry costs w1h once and reads after. 1h is chosen when it costs less. 1h marks always
precede 5m ones, as the API requires.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from costmesh.catalog import ModelSpec
from costmesh.domain import Image, Message
from costmesh.output_spec import Tool
from costmesh.services.providers.anthropic_content import TOOLS, Block, prompt, tool_param
from costmesh.services.providers.image_tokens import URL_IMAGE_SIZE, image_tokens, tokens_of_size
from costmesh.tokens import block_text, get_counter, tool_text

MAX_BREAKPOINTS = 4  # Anthropic rejects a request with more cache_control blocks
TTL_5M, TTL_1H = "5m", "1h"
TTL_SECONDS = {TTL_5M: 300.0, TTL_1H: 3600.0}
LONG_CONTEXT_TOKENS = 1024  # a part at least this long, followed by more prompt, is shared context

# The block that gets `cache_control` after it: (message index, block index in the message as
# sent), or (TOOLS, tool index) for a tool definition (see `anthropic_content`).
Breakpoint = tuple[int, int]


class BreakpointPolicy(Protocol):
    def place(
        self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "", tools: tuple[Tool, ...] = ()
    ) -> Mapping[Breakpoint, str]:
        """The blocks to mark with `cache_control: {"type": "ephemeral", "ttl": <value>}`; `tools`
        are the definitions sent (they come first in the cached prefix)."""
        ...


class ClientBreakpoints:
    """Only the breakpoints the client placed, the last four at most, 5m TTL.

    The last ones are kept because a later breakpoint covers a longer prefix.
    """

    def place(
        self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "", tools: tuple[Tool, ...] = ()
    ) -> dict[Breakpoint, str]:
        return {bp: TTL_5M for bp in client_marks(messages, tools)}


def client_marks(messages: tuple[Message, ...], tools: tuple[Tool, ...] = ()) -> list[Breakpoint]:
    """The client's own breakpoints in prompt order (tools, system, messages), the last four."""
    system, turns = prompt(messages)
    marked = [(TOOLS, t) for t, tool in enumerate(tools) if tool.cache_breakpoint]
    marked += [b.key for b in system if b.client_mark]
    marked += [b.key for turn in turns for b in turn.blocks if b.client_mark]
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
    section: str  # "tools" | "system" | "messages"
    turn: int  # the turn's index among the messages' turns (-1 for tools and system)
    tokens: int
    end: int  # prompt tokens up to and including this block
    digest: str  # of the prefix ending with this block


@functools.lru_cache(maxsize=128)
def _count(text: str) -> int:
    return get_counter().count(text)


def _image(image: Image) -> int | None:
    return image_tokens(image.data) if image.data else tokens_of_size(*URL_IMAGE_SIZE)


def block_tokens(block: Block) -> int:
    """A block's prompt tokens: its compact JSON (a text block: its text) less its images, plus
    each image by its pixels (bytes of no known image format stay in the JSON)."""
    body = block.body
    counted = [_image(image) for image in block.images]
    if None in counted:
        return _count(block_text(body))
    if body["type"] == "image":
        rest = 0
    elif block.images:  # a tool result holding images: its other content, then the images
        rest = _count(block_text({**body, "content": [c for c in body["content"] if c["type"] != "image"]}))
    else:
        rest = _count(block_text(body))
    return rest + sum(counted)


def layout(messages: tuple[Message, ...], tools: tuple[Tool, ...] = ()) -> list[_Slot]:
    """Every block in the order Anthropic caches the prompt (tools, system, turns), with running
    token totals: each message's overhead once, where its first block opens it."""
    counter = get_counter()
    system, turns = prompt(messages)
    tool_blocks = [((TOOLS, t), tool_text(param), _count(tool_text(param)))
                   for t, param in enumerate(tool_param(tool) for tool in tools)]
    sections = [("tools", -1, tool_blocks, None)]
    sections.append(("system", -1, [(b.key, block_text(b.body), block_tokens(b)) for b in system], "system"))
    sections += [("messages", i, [(b.key, block_text(b.body), block_tokens(b)) for b in turn.blocks], turn.role)
                 for i, turn in enumerate(turns)]
    slots: list[_Slot] = []
    total = 0
    digest = hashlib.sha256(b"costmesh-prefix-v2")
    for section, turn, blocks, role in sections:
        for j, (at, text, content_tokens) in enumerate(blocks):
            tokens = content_tokens + (counter.message_overhead(role) if role and j == 0 else 0)
            total += tokens
            digest.update(json.dumps([section, turn, j, text], separators=(",", ":")).encode())
            slots.append(_Slot(at, section, turn, tokens, total, digest.hexdigest()))
    return slots


class AutoBreakpoints:
    """Breakpoints at the end of the stable parts, TTL by expected reuse; the client's own kept."""

    def __init__(self, tracker: ReuseTracker | None = None):
        self.tracker = tracker if tracker is not None else ReuseTracker()

    def place(
        self, model: ModelSpec, messages: tuple[Message, ...], tenant_id: str = "", tools: tuple[Tool, ...] = ()
    ) -> dict[Breakpoint, str]:
        slots = layout(messages, tools)
        by_at = {slot.at: slot for slot in slots}
        client = client_marks(messages, tools)
        auto = [s for s in self.candidates(slots) if s.end >= model.min_cacheable_tokens and s.at not in client]
        room = MAX_BREAKPOINTS - len(client)
        if len(auto) > room:
            auto = (auto[:1] + auto[len(auto) - room + 1 :]) if room > 1 else auto[-room:] if room else []
        chosen = sorted({*(by_at[at] for at in client), *auto}, key=lambda s: s.end)
        ttls = [choose_ttl(model, self.tracker.observe(f"{tenant_id}\x00{model.id}", s.digest)) for s in chosen]
        return {slot.at: ttl for slot, ttl in zip(chosen, ordered(ttls))}

    @staticmethod
    def candidates(slots: list[_Slot]) -> list[_Slot]:
        """Ends of the stable parts, in prompt order: tool definitions and system prompt, long
        shared context, conversation so far."""
        if not slots:
            return []
        out: dict[Breakpoint, _Slot] = {}
        head = [s for s in slots if s.section == "system"] or [s for s in slots if s.section == "tools"]
        if head:  # the system prompt's end covers the tools before it
            out[head[-1].at] = head[-1]
        turns = [s for s in slots if s.section == "messages"]
        for slot in turns[:-1]:
            if slot.tokens >= LONG_CONTEXT_TOKENS:
                out[slot.at] = slot
        history = [s for s in turns if s.turn != turns[-1].turn] if turns else []
        if history:
            out[history[-1].at] = history[-1]
        return sorted(out.values(), key=lambda s: s.end)
