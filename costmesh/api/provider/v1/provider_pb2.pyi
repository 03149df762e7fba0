from costmesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchResultStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_RESULT_STATUS_UNSPECIFIED: _ClassVar[BatchResultStatus]
    BATCH_RESULT_STATUS_SUCCEEDED: _ClassVar[BatchResultStatus]
    BATCH_RESULT_STATUS_ERRORED: _ClassVar[BatchResultStatus]
    BATCH_RESULT_STATUS_CANCELED: _ClassVar[BatchResultStatus]
    BATCH_RESULT_STATUS_EXPIRED: _ClassVar[BatchResultStatus]
BATCH_RESULT_STATUS_UNSPECIFIED: BatchResultStatus
BATCH_RESULT_STATUS_SUCCEEDED: BatchResultStatus
BATCH_RESULT_STATUS_ERRORED: BatchResultStatus
BATCH_RESULT_STATUS_CANCELED: BatchResultStatus
BATCH_RESULT_STATUS_EXPIRED: BatchResultStatus

class GenerateRequest(_message.Message):
    __slots__ = ("model", "messages", "sampling", "tenant_id", "tools", "response_format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    tenant_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., tenant_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class StreamGenerateRequest(_message.Message):
    __slots__ = ("model", "messages", "sampling", "tenant_id", "tools", "response_format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    tenant_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., tenant_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "model", "provider", "usage", "cost", "finish_reason", "provider_request_id", "tool_calls")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    provider: str
    usage: _common_pb2.TokenUsage
    cost: _common_pb2.CostBreakdown
    finish_reason: str
    provider_request_id: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolCall]
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., finish_reason: _Optional[str] = ..., provider_request_id: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[_common_pb2.ToolCall, _Mapping]]] = ...) -> None: ...

class StreamGenerateResponse(_message.Message):
    __slots__ = ("text_delta", "final", "tool_call_delta")
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    text_delta: str
    final: GenerateResponse
    tool_call_delta: _common_pb2.ToolCallDelta
    def __init__(self, text_delta: _Optional[str] = ..., final: _Optional[_Union[GenerateResponse, _Mapping]] = ..., tool_call_delta: _Optional[_Union[_common_pb2.ToolCallDelta, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "provider", "tier", "input_usd_per_mtok", "output_usd_per_mtok", "context_window", "batch_api", "tools", "images", "json_schema")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    INPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    BATCH_API_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    tier: _common_pb2.Tier
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    context_window: int
    batch_api: bool
    tools: bool
    images: bool
    json_schema: bool
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., input_usd_per_mtok: _Optional[float] = ..., output_usd_per_mtok: _Optional[float] = ..., context_window: _Optional[int] = ..., batch_api: _Optional[bool] = ..., tools: _Optional[bool] = ..., images: _Optional[bool] = ..., json_schema: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class BatchRequestItem(_message.Message):
    __slots__ = ("custom_id", "model", "messages", "sampling", "tenant_id", "tools", "response_format")
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    custom_id: str
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    tenant_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, custom_id: _Optional[str] = ..., model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., tenant_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("requests", "label", "validate_only")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[BatchRequestItem]
    label: str
    validate_only: bool
    def __init__(self, requests: _Optional[_Iterable[_Union[BatchRequestItem, _Mapping]]] = ..., label: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("provider", "batch_id", "payload_bytes", "request_count")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    batch_id: str
    payload_bytes: int
    request_count: int
    def __init__(self, provider: _Optional[str] = ..., batch_id: _Optional[str] = ..., payload_bytes: _Optional[int] = ..., request_count: _Optional[int] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("provider", "batch_id")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    batch_id: str
    def __init__(self, provider: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

class GetBatchResponse(_message.Message):
    __slots__ = ("ended", "provider_status")
    ENDED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    ended: bool
    provider_status: str
    def __init__(self, ended: _Optional[bool] = ..., provider_status: _Optional[str] = ...) -> None: ...

class StreamBatchResultsRequest(_message.Message):
    __slots__ = ("provider", "batch_id", "models")
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    batch_id: str
    models: _containers.ScalarMap[str, str]
    def __init__(self, provider: _Optional[str] = ..., batch_id: _Optional[str] = ..., models: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("custom_id", "status", "response", "error")
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    custom_id: str
    status: BatchResultStatus
    response: GenerateResponse
    error: str
    def __init__(self, custom_id: _Optional[str] = ..., status: _Optional[_Union[BatchResultStatus, str]] = ..., response: _Optional[_Union[GenerateResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class StreamBatchResultsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...

class CancelBatchRequest(_message.Message):
    __slots__ = ("provider", "batch_id")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    batch_id: str
    def __init__(self, provider: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

class CancelBatchResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
