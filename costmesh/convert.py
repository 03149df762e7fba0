"""Protobuf <-> domain conversions, used by every servicer and client."""

from __future__ import annotations

from collections.abc import Iterable

from costmesh.api.common.v1 import common_pb2 as pb
from costmesh.domain import Cost, Image, Message, Part, Role, Sampling, Usage
from costmesh.errors import InvalidRequest


def message_from_pb(message: pb.Message, index: int = 0) -> Message:
    try:
        role = Role(message.role)
    except ValueError:
        raise InvalidRequest(f"messages[{index}].role: unknown role {message.role}") from None
    parts = []
    for part in message.content:
        kind = part.WhichOneof("kind")
        if kind == "text":
            parts.append(Part(text=part.text, cache_breakpoint=part.cache_breakpoint))
        elif kind == "image":
            img = part.image
            parts.append(Part(image=Image(img.media_type, img.data, img.url), cache_breakpoint=part.cache_breakpoint))
    return Message(role, tuple(parts))


def messages_from_pb(messages: Iterable[pb.Message]) -> tuple[Message, ...]:
    return tuple(message_from_pb(m, i) for i, m in enumerate(messages))


def message_to_pb(message: Message) -> pb.Message:
    out = pb.Message(role=int(message.role))
    for part in message.parts:
        if part.image is not None:
            img = part.image
            out.content.add(image=pb.Image(media_type=img.media_type, data=img.data, url=img.url),
                            cache_breakpoint=part.cache_breakpoint)
        else:
            out.content.add(text=part.text or "", cache_breakpoint=part.cache_breakpoint)
    return out


def messages_to_pb(messages: Iterable[Message]) -> list[pb.Message]:
    return [message_to_pb(m) for m in messages]


def sampling_from_pb(sampling: pb.SamplingParams, default_max_tokens: int = 1024) -> Sampling:
    return Sampling(
        max_tokens=sampling.max_tokens or default_max_tokens,
        temperature=sampling.temperature if sampling.HasField("temperature") else None,
        top_p=sampling.top_p if sampling.HasField("top_p") else None,
        stop=tuple(sampling.stop),
        seed=sampling.seed if sampling.HasField("seed") else None,
    )


def sampling_to_pb(sampling: Sampling) -> pb.SamplingParams:
    out = pb.SamplingParams(max_tokens=sampling.max_tokens, stop=list(sampling.stop))
    if sampling.temperature is not None:
        out.temperature = sampling.temperature
    if sampling.top_p is not None:
        out.top_p = sampling.top_p
    if sampling.seed is not None:
        out.seed = sampling.seed
    return out


def usage_from_pb(usage: pb.TokenUsage) -> Usage:
    return Usage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                 usage.cache_write_tokens, usage.cache_write_1h_tokens)


def usage_to_pb(usage: Usage) -> pb.TokenUsage:
    return pb.TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )


def cost_from_pb(cost: pb.CostBreakdown) -> Cost:
    return Cost(cost.input_usd, cost.cache_read_usd, cost.cache_write_usd, cost.output_usd,
                cost.embedding_usd, cost.discount_usd)


def cost_to_pb(cost: Cost) -> pb.CostBreakdown:
    return pb.CostBreakdown(
        input_usd=cost.input_usd,
        cache_read_usd=cost.cache_read_usd,
        cache_write_usd=cost.cache_write_usd,
        output_usd=cost.output_usd,
        embedding_usd=cost.embedding_usd,
        discount_usd=cost.discount_usd,
        total_usd=cost.total_usd,
    )
