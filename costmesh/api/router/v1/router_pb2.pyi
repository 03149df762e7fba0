from costmesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttemptOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_OUTCOME_UNSPECIFIED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_OK: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_GATE_FAILED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_ERROR: _ClassVar[AttemptOutcome]
ATTEMPT_OUTCOME_UNSPECIFIED: AttemptOutcome
ATTEMPT_OUTCOME_OK: AttemptOutcome
ATTEMPT_OUTCOME_GATE_FAILED: AttemptOutcome
ATTEMPT_OUTCOME_ERROR: AttemptOutcome

class ExecuteRequest(_message.Message):
    __slots__ = ("messages", "sampling", "tier", "score", "max_tier", "model", "tenant_id", "tools", "response_format")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    tier: _common_pb2.Tier
    score: float
    max_tier: _common_pb2.Tier
    model: str
    tenant_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., score: _Optional[float] = ..., max_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., model: _Optional[str] = ..., tenant_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class StreamExecuteRequest(_message.Message):
    __slots__ = ("messages", "sampling", "tier", "score", "max_tier", "model", "tenant_id", "tools", "response_format")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    tier: _common_pb2.Tier
    score: float
    max_tier: _common_pb2.Tier
    model: str
    tenant_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., score: _Optional[float] = ..., max_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., model: _Optional[str] = ..., tenant_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("model", "provider", "tier", "outcome", "quality_score", "detail", "cost", "latency_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    provider: str
    tier: _common_pb2.Tier
    outcome: AttemptOutcome
    quality_score: float
    detail: str
    cost: _common_pb2.CostBreakdown
    latency_ms: float
    def __init__(self, model: _Optional[str] = ..., provider: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., outcome: _Optional[_Union[AttemptOutcome, str]] = ..., quality_score: _Optional[float] = ..., detail: _Optional[str] = ..., cost: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("text", "model", "provider", "tier", "usage", "cost", "baseline_cost_usd", "list_cost_usd", "attempts", "quality_score", "quality_passed", "finish_reason", "baseline_cost_micro_usd", "list_cost_micro_usd", "tool_calls")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    LIST_COST_USD_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_PASSED_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    LIST_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    provider: str
    tier: _common_pb2.Tier
    usage: _common_pb2.TokenUsage
    cost: _common_pb2.CostBreakdown
    baseline_cost_usd: float
    list_cost_usd: float
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    quality_score: float
    quality_passed: bool
    finish_reason: str
    baseline_cost_micro_usd: int
    list_cost_micro_usd: int
    tool_calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolCall]
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., baseline_cost_usd: _Optional[float] = ..., list_cost_usd: _Optional[float] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., quality_score: _Optional[float] = ..., quality_passed: _Optional[bool] = ..., finish_reason: _Optional[str] = ..., baseline_cost_micro_usd: _Optional[int] = ..., list_cost_micro_usd: _Optional[int] = ..., tool_calls: _Optional[_Iterable[_Union[_common_pb2.ToolCall, _Mapping]]] = ...) -> None: ...

class StreamExecuteResponse(_message.Message):
    __slots__ = ("text_delta", "final", "tool_call_delta")
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    text_delta: str
    final: ExecuteResponse
    tool_call_delta: _common_pb2.ToolCallDelta
    def __init__(self, text_delta: _Optional[str] = ..., final: _Optional[_Union[ExecuteResponse, _Mapping]] = ..., tool_call_delta: _Optional[_Union[_common_pb2.ToolCallDelta, _Mapping]] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("tier", "max_tier", "model", "providers")
    TIER_FIELD_NUMBER: _ClassVar[int]
    MAX_TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    tier: _common_pb2.Tier
    max_tier: _common_pb2.Tier
    model: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., max_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., model: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("model", "provider", "tier")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    model: str
    provider: str
    tier: _common_pb2.Tier
    def __init__(self, model: _Optional[str] = ..., provider: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ...) -> None: ...
