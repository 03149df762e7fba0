"""Protobuf <-> domain conversions, used by every servicer and client."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as PbMessage

from costmesh.accounting import Savings
from costmesh.api.common.v1 import common_pb2 as pb
from costmesh.domain import Cost, Image, Message, Part, Role, Sampling, ToolCall, Usage
from costmesh.errors import InvalidRequest
from costmesh.output_spec import (
    ChoiceMode,
    FormatType,
    OutputSpec,
    ResponseFormat,
    Tool,
    ToolChoice,
    check_tools,
    parse_schema,
)
from costmesh.pricing import MICROS_PER_USD, micro_usd

M = TypeVar("M", bound=PbMessage)


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
    return Message(role, tuple(parts), tool_calls_from_pb(message.tool_calls), message.tool_call_id, message.is_error)


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
    out.tool_calls.extend(tool_calls_to_pb(message.tool_calls))
    out.tool_call_id = message.tool_call_id
    out.is_error = message.is_error
    return out


def messages_to_pb(messages: Iterable[Message]) -> list[pb.Message]:
    return [message_to_pb(m) for m in messages]


def tool_calls_from_pb(calls: Iterable[pb.ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c.id, c.name, c.arguments_json) for c in calls)


def tool_calls_to_pb(calls: Iterable[ToolCall]) -> list[pb.ToolCall]:
    return [pb.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments) for c in calls]


_CHOICE_MODES = {
    pb.TOOL_CHOICE_MODE_UNSPECIFIED: ChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_AUTO: ChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_NONE: ChoiceMode.NONE,
    pb.TOOL_CHOICE_MODE_REQUIRED: ChoiceMode.REQUIRED,
    pb.TOOL_CHOICE_MODE_TOOL: ChoiceMode.TOOL,
}
_FORMAT_TYPES = {
    pb.RESPONSE_FORMAT_TYPE_UNSPECIFIED: FormatType.TEXT,
    pb.RESPONSE_FORMAT_TYPE_TEXT: FormatType.TEXT,
    pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT: FormatType.JSON_OBJECT,
    pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: FormatType.JSON_SCHEMA,
}


def output_spec_from_pb(tools: pb.ToolConfig, response_format: pb.ResponseFormat) -> OutputSpec:
    """The request's tools and format, checked (`InvalidRequest` names the field, e.g.
    `tools.tools[1].parameters_json`)."""
    parsed = []
    for i, tool in enumerate(tools.tools):
        parameters = (parse_schema(tool.parameters_json, f"tools.tools[{i}].parameters_json")
                      if tool.parameters_json else {"type": "object", "properties": {}})
        parsed.append(Tool(tool.name, tool.description, parameters, tool.strict, tool.cache_breakpoint))
    mode = _CHOICE_MODES.get(tools.choice.mode)
    if mode is None:
        raise InvalidRequest(f"tools.choice.mode: unknown mode {tools.choice.mode}")
    kind = _FORMAT_TYPES.get(response_format.type)
    if kind is None:
        raise InvalidRequest(f"response_format.type: unknown type {response_format.type}")
    schema = (parse_schema(response_format.schema_json, "response_format.schema_json")
              if response_format.schema_json else None)
    spec = OutputSpec(
        tools=tuple(parsed),
        choice=ToolChoice(mode, tools.choice.name),
        parallel_tool_calls=tools.parallel_tool_calls if tools.HasField("parallel_tool_calls") else None,
        response_format=ResponseFormat(kind, response_format.name, schema, response_format.strict),
    )
    check_tools(spec, "tools.tools")
    return spec


def output_spec_to_pb(spec: OutputSpec) -> tuple[pb.ToolConfig, pb.ResponseFormat]:
    modes = {mode: value for value, mode in reversed(_CHOICE_MODES.items())}
    types = {kind: value for value, kind in reversed(_FORMAT_TYPES.items())}
    config = pb.ToolConfig(
        tools=[pb.Tool(name=t.name, description=t.description, strict=t.strict, cache_breakpoint=t.cache_breakpoint,
                       parameters_json=json.dumps(t.parameters, separators=(",", ":")))
               for t in spec.tools],
        choice=pb.ToolChoice(mode=modes[spec.choice.mode], name=spec.choice.name),
    )
    if spec.parallel_tool_calls is not None:
        config.parallel_tool_calls = spec.parallel_tool_calls
    fmt = spec.response_format
    response_format = pb.ResponseFormat(type=types[fmt.type], name=fmt.name, strict=fmt.strict)
    if fmt.schema is not None:
        response_format.schema_json = json.dumps(fmt.schema, separators=(",", ":"))
    return config, response_format


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


def savings_to_pb(savings: Savings) -> pb.LayerSavings:
    return pb.LayerSavings(cache_usd=savings.cache_usd, routing_usd=savings.routing_usd,
                           prompt_caching_usd=savings.prompt_caching_usd, batch_usd=savings.batch_usd,
                           inference_usd=savings.inference_usd)


def cost_from_pb(cost: pb.CostBreakdown) -> Cost:
    return Cost(cost.input_usd, cost.cache_read_usd, cost.cache_write_usd, cost.output_usd,
                cost.embedding_usd, cost.discount_usd)


def cost_to_pb(cost: Cost) -> pb.CostBreakdown:
    return with_micro_usd(pb.CostBreakdown(
        input_usd=cost.input_usd,
        cache_read_usd=cost.cache_read_usd,
        cache_write_usd=cost.cache_write_usd,
        output_usd=cost.output_usd,
        embedding_usd=cost.embedding_usd,
        discount_usd=cost.discount_usd,
        total_usd=cost.total_usd,
    ))


MICRO_USD = "_micro_usd"
COST_PARTS = ("input", "cache_read", "cache_write", "output", "embedding")  # CostBreakdown's, less discount
_SUMS = ("total", "saving")  # the micro-dollar fields summed from the others, never rounded themselves


def with_micro_usd(message: M) -> M:
    """`message` with every integer micro-dollar field set, in it and in every message it holds.

    Each `<name>_micro_usd` is its `<name>_usd` double rounded (`pricing.micro_usd`), except the
    sums the protos document as exact: CostBreakdown.total_micro_usd is the integer parts less
    the discount, and a response's saving_micro_usd is its baseline_cost_micro_usd less its
    cost's total_micro_usd. Idempotent: the doubles are the input, so a message whose doubles
    changed (a copied cost with the embedding added) is simply filled again.

    Running totals (GetStats, a batch's bill) are not filled here: they add their answers'
    integers up instead of rounding their summed doubles.
    """
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        for item in value if field.is_repeated else (value,):
            with_micro_usd(item)
    names = [f.name[: -len(MICRO_USD)] for f in message.DESCRIPTOR.fields if f.name.endswith(MICRO_USD)]
    for name in names:
        if name not in _SUMS:
            setattr(message, name + MICRO_USD, micro_usd(getattr(message, name + "_usd")))
    if "total" in names:  # CostBreakdown
        parts = sum(getattr(message, part + MICRO_USD) for part in COST_PARTS)
        message.total_micro_usd = parts - message.discount_micro_usd
    if "saving" in names:  # baseline less cost
        cost = message.cost.total_micro_usd if "cost" in message.DESCRIPTOR.fields_by_name else message.cost_micro_usd
        message.saving_micro_usd = message.baseline_cost_micro_usd - cost
    return message


def with_rounded_usd(message: M) -> M:
    """`message` with every `<name>_usd` double set to its `<name>_micro_usd` integer in dollars,
    in it and in every message it holds: what leaves the gateway reads 0.001665, not
    0.0016649999999999998, and never -0.0, and the doubles add up as the integers do. Fill the
    integers first (`with_micro_usd`) unless they are sums of their own (GetStats)."""
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        for item in value if field.is_repeated else (value,):
            with_rounded_usd(item)
    fields = message.DESCRIPTOR.fields_by_name
    for name, field in fields.items():
        double = name[: -len(MICRO_USD)] + "_usd"
        if not name.endswith(MICRO_USD) or double not in fields:
            continue
        if field.has_presence and not message.HasField(name):
            continue
        setattr(message, double, getattr(message, name) / MICROS_PER_USD)
    return message


def same_fields_as(message: PbMessage, message_type: type[M]) -> M:
    """`message` as `message_type`, a message with the same fields under the same numbers (a
    streaming RPC's request and its unary twin's, e.g. ExecuteRequest -> StreamExecuteRequest):
    the same bytes on the wire, read as the other type."""
    return message_type.FromString(message.SerializeToString())
