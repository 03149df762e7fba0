from costmesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HIT_KIND_UNSPECIFIED: _ClassVar[HitKind]
    HIT_KIND_MISS: _ClassVar[HitKind]
    HIT_KIND_EXACT: _ClassVar[HitKind]
    HIT_KIND_SEMANTIC: _ClassVar[HitKind]
    HIT_KIND_NOT_CACHEABLE: _ClassVar[HitKind]
    HIT_KIND_UNAVAILABLE: _ClassVar[HitKind]

class ShadowVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHADOW_VERDICT_UNSPECIFIED: _ClassVar[ShadowVerdict]
    SHADOW_VERDICT_SAME: _ClassVar[ShadowVerdict]
    SHADOW_VERDICT_DIFFERENT: _ClassVar[ShadowVerdict]
HIT_KIND_UNSPECIFIED: HitKind
HIT_KIND_MISS: HitKind
HIT_KIND_EXACT: HitKind
HIT_KIND_SEMANTIC: HitKind
HIT_KIND_NOT_CACHEABLE: HitKind
HIT_KIND_UNAVAILABLE: HitKind
SHADOW_VERDICT_UNSPECIFIED: ShadowVerdict
SHADOW_VERDICT_SAME: ShadowVerdict
SHADOW_VERDICT_DIFFERENT: ShadowVerdict

class Scope(_message.Message):
    __slots__ = ("tenant_id", "session_id", "session_scoped", "model_policy", "output_spec", "semantic_tool_answers")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_SCOPED_FIELD_NUMBER: _ClassVar[int]
    MODEL_POLICY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SPEC_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TOOL_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    session_id: str
    session_scoped: bool
    model_policy: str
    output_spec: str
    semantic_tool_answers: bool
    def __init__(self, tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., session_scoped: _Optional[bool] = ..., model_policy: _Optional[str] = ..., output_spec: _Optional[str] = ..., semantic_tool_answers: _Optional[bool] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("scope", "messages", "sampling")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("kind", "text", "entry_id", "similarity", "model", "usage", "baseline_cost_usd", "embedding", "embedding_model", "embedding_cost_usd", "tool_calls", "shadow")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_COST_USD_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    kind: HitKind
    text: str
    entry_id: str
    similarity: float
    model: str
    usage: _common_pb2.TokenUsage
    baseline_cost_usd: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    embedding_model: str
    embedding_cost_usd: float
    tool_calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolCall]
    shadow: bool
    def __init__(self, kind: _Optional[_Union[HitKind, str]] = ..., text: _Optional[str] = ..., entry_id: _Optional[str] = ..., similarity: _Optional[float] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., baseline_cost_usd: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., embedding_model: _Optional[str] = ..., embedding_cost_usd: _Optional[float] = ..., tool_calls: _Optional[_Iterable[_Union[_common_pb2.ToolCall, _Mapping]]] = ..., shadow: _Optional[bool] = ...) -> None: ...

class StoreRequest(_message.Message):
    __slots__ = ("scope", "messages", "sampling", "text", "model", "usage", "baseline_cost_usd", "tags", "ttl_seconds", "embedding", "finish_reason", "quality_passed", "embedding_model", "tool_calls")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    QUALITY_PASSED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    text: str
    model: str
    usage: _common_pb2.TokenUsage
    baseline_cost_usd: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    ttl_seconds: int
    embedding: _containers.RepeatedScalarFieldContainer[float]
    finish_reason: str
    quality_passed: bool
    embedding_model: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolCall]
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., text: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., baseline_cost_usd: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ..., ttl_seconds: _Optional[int] = ..., embedding: _Optional[_Iterable[float]] = ..., finish_reason: _Optional[str] = ..., quality_passed: _Optional[bool] = ..., embedding_model: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[_common_pb2.ToolCall, _Mapping]]] = ...) -> None: ...

class StoreResponse(_message.Message):
    __slots__ = ("stored", "entry_id", "reason")
    STORED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    entry_id: str
    reason: str
    def __init__(self, stored: _Optional[bool] = ..., entry_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class InvalidateRequest(_message.Message):
    __slots__ = ("tenant_id", "tags", "entry_id", "all", "session_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    entry_id: str
    all: bool
    session_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., entry_id: _Optional[str] = ..., all: _Optional[bool] = ..., session_id: _Optional[str] = ...) -> None: ...

class InvalidateResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("lookups", "exact_hits", "semantic_hits", "misses", "errors", "stores", "stores_refused", "stores_dropped", "entries", "hit_rate", "avg_hit_similarity", "verifier_rejections", "evictions", "bytes_per_entry", "embedding_model", "index_name", "verifier", "max_false_hit_rate", "verifier_threshold", "calibrated_false_hit_rate", "calibrated_precision", "calibrated_recall", "calibrated_trap_recall", "redis_available", "not_cacheable", "lookups_busy", "stores_busy", "live")
    LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    EXACT_HITS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    STORES_FIELD_NUMBER: _ClassVar[int]
    STORES_REFUSED_FIELD_NUMBER: _ClassVar[int]
    STORES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    AVG_HIT_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_ENTRY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_NAME_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    MAX_FALSE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FALSE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_RECALL_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_TRAP_RECALL_FIELD_NUMBER: _ClassVar[int]
    REDIS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    NOT_CACHEABLE_FIELD_NUMBER: _ClassVar[int]
    LOOKUPS_BUSY_FIELD_NUMBER: _ClassVar[int]
    STORES_BUSY_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    lookups: int
    exact_hits: int
    semantic_hits: int
    misses: int
    errors: int
    stores: int
    stores_refused: int
    stores_dropped: int
    entries: int
    hit_rate: float
    avg_hit_similarity: float
    verifier_rejections: int
    evictions: int
    bytes_per_entry: float
    embedding_model: str
    index_name: str
    verifier: str
    max_false_hit_rate: float
    verifier_threshold: float
    calibrated_false_hit_rate: float
    calibrated_precision: float
    calibrated_recall: float
    calibrated_trap_recall: float
    redis_available: bool
    not_cacheable: int
    lookups_busy: int
    stores_busy: int
    live: LiveFalseHitEstimate
    def __init__(self, lookups: _Optional[int] = ..., exact_hits: _Optional[int] = ..., semantic_hits: _Optional[int] = ..., misses: _Optional[int] = ..., errors: _Optional[int] = ..., stores: _Optional[int] = ..., stores_refused: _Optional[int] = ..., stores_dropped: _Optional[int] = ..., entries: _Optional[int] = ..., hit_rate: _Optional[float] = ..., avg_hit_similarity: _Optional[float] = ..., verifier_rejections: _Optional[int] = ..., evictions: _Optional[int] = ..., bytes_per_entry: _Optional[float] = ..., embedding_model: _Optional[str] = ..., index_name: _Optional[str] = ..., verifier: _Optional[str] = ..., max_false_hit_rate: _Optional[float] = ..., verifier_threshold: _Optional[float] = ..., calibrated_false_hit_rate: _Optional[float] = ..., calibrated_precision: _Optional[float] = ..., calibrated_recall: _Optional[float] = ..., calibrated_trap_recall: _Optional[float] = ..., redis_available: _Optional[bool] = ..., not_cacheable: _Optional[int] = ..., lookups_busy: _Optional[int] = ..., stores_busy: _Optional[int] = ..., live: _Optional[_Union[LiveFalseHitEstimate, _Mapping]] = ...) -> None: ...

class JudgeShadowRequest(_message.Message):
    __slots__ = ("scope", "entry_id", "messages", "served_text", "fresh_text", "verdict", "similarity")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SERVED_TEXT_FIELD_NUMBER: _ClassVar[int]
    FRESH_TEXT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    scope: Scope
    entry_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    served_text: str
    fresh_text: str
    verdict: ShadowVerdict
    similarity: float
    def __init__(self, scope: _Optional[_Union[Scope, _Mapping]] = ..., entry_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., served_text: _Optional[str] = ..., fresh_text: _Optional[str] = ..., verdict: _Optional[_Union[ShadowVerdict, str]] = ..., similarity: _Optional[float] = ...) -> None: ...

class JudgeShadowResponse(_message.Message):
    __slots__ = ("verdict", "score", "judge", "judge_cost_usd", "live")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    verdict: ShadowVerdict
    score: float
    judge: str
    judge_cost_usd: float
    live: LiveFalseHitEstimate
    def __init__(self, verdict: _Optional[_Union[ShadowVerdict, str]] = ..., score: _Optional[float] = ..., judge: _Optional[str] = ..., judge_cost_usd: _Optional[float] = ..., live: _Optional[_Union[LiveFalseHitEstimate, _Mapping]] = ...) -> None: ...

class LiveFalseHitEstimate(_message.Message):
    __slots__ = ("tenant_id", "verdicts", "false_hits", "false_hit_rate", "upper_bound", "total_verdicts", "total_false_hits", "threshold", "calibrated_threshold", "max_false_hit_rate", "min_verdicts", "threshold_moves")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    FALSE_HITS_FIELD_NUMBER: _ClassVar[int]
    FALSE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FALSE_HITS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_FALSE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MOVES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    verdicts: int
    false_hits: int
    false_hit_rate: float
    upper_bound: float
    total_verdicts: int
    total_false_hits: int
    threshold: float
    calibrated_threshold: float
    max_false_hit_rate: float
    min_verdicts: int
    threshold_moves: int
    def __init__(self, tenant_id: _Optional[str] = ..., verdicts: _Optional[int] = ..., false_hits: _Optional[int] = ..., false_hit_rate: _Optional[float] = ..., upper_bound: _Optional[float] = ..., total_verdicts: _Optional[int] = ..., total_false_hits: _Optional[int] = ..., threshold: _Optional[float] = ..., calibrated_threshold: _Optional[float] = ..., max_false_hit_rate: _Optional[float] = ..., min_verdicts: _Optional[int] = ..., threshold_moves: _Optional[int] = ...) -> None: ...
