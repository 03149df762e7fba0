"""Where Anthropic prompt-cache breakpoints go. The hook for automatic placement (a later issue)."""

from __future__ import annotations

from typing import Protocol

from costmesh.catalog import ModelSpec
from costmesh.domain import Message

MAX_BREAKPOINTS = 4  # Anthropic rejects a request with more cache_control blocks

# (message index, part index) of a part that gets `cache_control` after it.
Breakpoint = tuple[int, int]


class BreakpointPolicy(Protocol):
    def place(self, model: ModelSpec, messages: tuple[Message, ...]) -> frozenset[Breakpoint]:
        """The parts to mark with `cache_control: {"type": "ephemeral"}`."""
        ...


class ClientBreakpoints:
    """Only the breakpoints the client placed (`Part.cache_breakpoint`), the last four at most.

    The last ones are kept because a later breakpoint covers a longer prefix.
    """

    def place(self, model: ModelSpec, messages: tuple[Message, ...]) -> frozenset[Breakpoint]:
        marked = [
            (m, p)
            for m, message in enumerate(messages)
            for p, part in enumerate(message.parts)
            if part.cache_breakpoint
        ]
        return frozenset(marked[-MAX_BREAKPOINTS:])
