from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class ToolChoiceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_CHOICE_MODE_UNSPECIFIED: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_AUTO: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_NONE: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_REQUIRED: _ClassVar[ToolChoiceMode]
    TOOL_CHOICE_MODE_TOOL: _ClassVar[ToolChoiceMode]

class ResponseFormatType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_FORMAT_TYPE_UNSPECIFIED: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_TEXT: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_JSON_OBJECT: _ClassVar[ResponseFormatType]
    RESPONSE_FORMAT_TYPE_JSON_SCHEMA: _ClassVar[ResponseFormatType]

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    TIER_TRIVIAL: _ClassVar[Tier]
    TIER_SIMPLE: _ClassVar[Tier]
    TIER_MODERATE: _ClassVar[Tier]
    TIER_COMPLEX: _ClassVar[Tier]
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode
TOOL_CHOICE_MODE_AUTO: ToolChoiceMode
TOOL_CHOICE_MODE_NONE: ToolChoiceMode
TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode
TOOL_CHOICE_MODE_TOOL: ToolChoiceMode
RESPONSE_FORMAT_TYPE_UNSPECIFIED: ResponseFormatType
RESPONSE_FORMAT_TYPE_TEXT: ResponseFormatType
RESPONSE_FORMAT_TYPE_JSON_OBJECT: ResponseFormatType
RESPONSE_FORMAT_TYPE_JSON_SCHEMA: ResponseFormatType
TIER_UNSPECIFIED: Tier
TIER_TRIVIAL: Tier
TIER_SIMPLE: Tier
TIER_MODERATE: Tier
TIER_COMPLEX: Tier

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments_json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class ToolCallDelta(_message.Message):
    __slots__ = ("index", "id", "name", "arguments_delta")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_DELTA_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    name: str
    arguments_delta: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_delta: _Optional[str] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "parameters_json", "strict", "cache_breakpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    CACHE_BREAKPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json: str
    strict: bool
    cache_breakpoint: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ..., strict: _Optional[bool] = ..., cache_breakpoint: _Optional[bool] = ...) -> None: ...

class ToolChoice(_message.Message):
    __slots__ = ("mode", "name")
    MODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    mode: ToolChoiceMode
    name: str
    def __init__(self, mode: _Optional[_Union[ToolChoiceMode, str]] = ..., name: _Optional[str] = ...) -> None: ...

class ToolConfig(_message.Message):
    __slots__ = ("tools", "choice", "parallel_tool_calls")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    choice: ToolChoice
    parallel_tool_calls: bool
    def __init__(self, tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., choice: _Optional[_Union[ToolChoice, _Mapping]] = ..., parallel_tool_calls: _Optional[bool] = ...) -> None: ...

class ResponseFormat(_message.Message):
    __slots__ = ("type", "name", "schema_json", "strict")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    type: ResponseFormatType
    name: str
    schema_json: str
    strict: bool
    def __init__(self, type: _Optional[_Union[ResponseFormatType, str]] = ..., name: _Optional[str] = ..., schema_json: _Optional[str] = ..., strict: _Optional[bool] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("media_type", "data", "url")
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    data: bytes
    url: str
    def __init__(self, media_type: _Optional[str] = ..., data: _Optional[bytes] = ..., url: _Optional[str] = ...) -> None: ...

class ContentPart(_message.Message):
    __slots__ = ("text", "image", "cache_breakpoint")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CACHE_BREAKPOINT_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: Image
    cache_breakpoint: bool
    def __init__(self, text: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., cache_breakpoint: _Optional[bool] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "content", "tool_calls", "tool_call_id", "is_error")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: _containers.RepeatedCompositeFieldContainer[ContentPart]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    is_error: bool
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[_Iterable[_Union[ContentPart, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., is_error: _Optional[bool] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "stop", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_1H_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., cache_write_1h_tokens: _Optional[int] = ...) -> None: ...

class CostBreakdown(_message.Message):
    __slots__ = ("input_usd", "cache_read_usd", "cache_write_usd", "output_usd", "embedding_usd", "discount_usd", "total_usd", "input_micro_usd", "cache_read_micro_usd", "cache_write_micro_usd", "output_micro_usd", "embedding_micro_usd", "discount_micro_usd", "total_micro_usd")
    INPUT_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_USD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_USD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_USD_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_USD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    input_usd: float
    cache_read_usd: float
    cache_write_usd: float
    output_usd: float
    embedding_usd: float
    discount_usd: float
    total_usd: float
    input_micro_usd: int
    cache_read_micro_usd: int
    cache_write_micro_usd: int
    output_micro_usd: int
    embedding_micro_usd: int
    discount_micro_usd: int
    total_micro_usd: int
    def __init__(self, input_usd: _Optional[float] = ..., cache_read_usd: _Optional[float] = ..., cache_write_usd: _Optional[float] = ..., output_usd: _Optional[float] = ..., embedding_usd: _Optional[float] = ..., discount_usd: _Optional[float] = ..., total_usd: _Optional[float] = ..., input_micro_usd: _Optional[int] = ..., cache_read_micro_usd: _Optional[int] = ..., cache_write_micro_usd: _Optional[int] = ..., output_micro_usd: _Optional[int] = ..., embedding_micro_usd: _Optional[int] = ..., discount_micro_usd: _Optional[int] = ..., total_micro_usd: _Optional[int] = ...) -> None: ...

class LayerSavings(_message.Message):
    __slots__ = ("cache_usd", "routing_usd", "prompt_caching_usd", "batch_usd", "inference_usd", "cache_micro_usd", "routing_micro_usd", "prompt_caching_micro_usd", "batch_micro_usd", "inference_micro_usd")
    CACHE_USD_FIELD_NUMBER: _ClassVar[int]
    ROUTING_USD_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHING_USD_FIELD_NUMBER: _ClassVar[int]
    BATCH_USD_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    ROUTING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    BATCH_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    cache_usd: float
    routing_usd: float
    prompt_caching_usd: float
    batch_usd: float
    inference_usd: float
    cache_micro_usd: int
    routing_micro_usd: int
    prompt_caching_micro_usd: int
    batch_micro_usd: int
    inference_micro_usd: int
    def __init__(self, cache_usd: _Optional[float] = ..., routing_usd: _Optional[float] = ..., prompt_caching_usd: _Optional[float] = ..., batch_usd: _Optional[float] = ..., inference_usd: _Optional[float] = ..., cache_micro_usd: _Optional[int] = ..., routing_micro_usd: _Optional[int] = ..., prompt_caching_micro_usd: _Optional[int] = ..., batch_micro_usd: _Optional[int] = ..., inference_micro_usd: _Optional[int] = ...) -> None: ...
