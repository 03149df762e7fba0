"""Domain types shared by the services' core logic (no protobuf, no gRPC)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields


class Role(enum.IntEnum):
    """Values match `costmesh.common.v1.Role`."""

    SYSTEM = 1
    USER = 2
    ASSISTANT = 3
    TOOL = 4


@dataclass(frozen=True)
class Image:
    media_type: str = ""
    data: bytes = b""
    url: str = ""


@dataclass(frozen=True)
class Part:
    text: str | None = None
    image: Image | None = None
    cache_breakpoint: bool = False


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. `arguments` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Message:
    """One message. An assistant message may carry `tool_calls` (and no text); a TOOL message
    answers the call `tool_call_id` names, its parts being the result."""

    role: Role
    parts: tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if p.text is not None)

    @classmethod
    def of(cls, role: Role, text: str) -> "Message":
        return cls(role, (Part(text=text),))


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Usage:
    """Token usage. `input_tokens` counts every prompt token, cached or not."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass
class Cost:
    """Dollars. `total_usd` is the sum of the parts less the discount."""

    input_usd: float = 0.0
    cache_read_usd: float = 0.0
    cache_write_usd: float = 0.0
    output_usd: float = 0.0
    embedding_usd: float = 0.0
    discount_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        return (
            self.input_usd
            + self.cache_read_usd
            + self.cache_write_usd
            + self.output_usd
            + self.embedding_usd
            - self.discount_usd
        )

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass
class Generation:
    """One model call's answer with what it used and cost."""

    text: str
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    finish_reason: str = "stop"
    provider_request_id: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


def system_prompt(messages: tuple[Message, ...] | list[Message]) -> str:
    return "\n".join(m.text for m in messages if m.role == Role.SYSTEM)


def last_user_text(messages: tuple[Message, ...] | list[Message]) -> str:
    for message in reversed(messages):
        if message.role == Role.USER:
            return message.text
    return ""
