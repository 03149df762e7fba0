from costmesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CacheStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_STATUS_UNSPECIFIED: _ClassVar[CacheStatus]
    CACHE_STATUS_MISS: _ClassVar[CacheStatus]
    CACHE_STATUS_EXACT_HIT: _ClassVar[CacheStatus]
    CACHE_STATUS_SEMANTIC_HIT: _ClassVar[CacheStatus]
    CACHE_STATUS_BYPASSED: _ClassVar[CacheStatus]
    CACHE_STATUS_UNAVAILABLE: _ClassVar[CacheStatus]

class BatchStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_STATUS_UNSPECIFIED: _ClassVar[BatchStatus]
    BATCH_STATUS_IN_PROGRESS: _ClassVar[BatchStatus]
    BATCH_STATUS_CANCELING: _ClassVar[BatchStatus]
    BATCH_STATUS_ENDED: _ClassVar[BatchStatus]

class BatchItemStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_ITEM_STATUS_UNSPECIFIED: _ClassVar[BatchItemStatus]
    BATCH_ITEM_STATUS_PENDING: _ClassVar[BatchItemStatus]
    BATCH_ITEM_STATUS_SUCCEEDED: _ClassVar[BatchItemStatus]
    BATCH_ITEM_STATUS_ERRORED: _ClassVar[BatchItemStatus]
    BATCH_ITEM_STATUS_CANCELED: _ClassVar[BatchItemStatus]
    BATCH_ITEM_STATUS_EXPIRED: _ClassVar[BatchItemStatus]
CACHE_STATUS_UNSPECIFIED: CacheStatus
CACHE_STATUS_MISS: CacheStatus
CACHE_STATUS_EXACT_HIT: CacheStatus
CACHE_STATUS_SEMANTIC_HIT: CacheStatus
CACHE_STATUS_BYPASSED: CacheStatus
CACHE_STATUS_UNAVAILABLE: CacheStatus
BATCH_STATUS_UNSPECIFIED: BatchStatus
BATCH_STATUS_IN_PROGRESS: BatchStatus
BATCH_STATUS_CANCELING: BatchStatus
BATCH_STATUS_ENDED: BatchStatus
BATCH_ITEM_STATUS_UNSPECIFIED: BatchItemStatus
BATCH_ITEM_STATUS_PENDING: BatchItemStatus
BATCH_ITEM_STATUS_SUCCEEDED: BatchItemStatus
BATCH_ITEM_STATUS_ERRORED: BatchItemStatus
BATCH_ITEM_STATUS_CANCELED: BatchItemStatus
BATCH_ITEM_STATUS_EXPIRED: BatchItemStatus

class CachePolicy(_message.Message):
    __slots__ = ("bypass", "ttl_seconds", "tags", "session_scoped", "semantic_tool_answers")
    BYPASS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SESSION_SCOPED_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_TOOL_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    bypass: bool
    ttl_seconds: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    session_scoped: bool
    semantic_tool_answers: bool
    def __init__(self, bypass: _Optional[bool] = ..., ttl_seconds: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., session_scoped: _Optional[bool] = ..., semantic_tool_answers: _Optional[bool] = ...) -> None: ...

class RoutingPolicy(_message.Message):
    __slots__ = ("min_tier", "max_tier", "model")
    MIN_TIER_FIELD_NUMBER: _ClassVar[int]
    MAX_TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    min_tier: _common_pb2.Tier
    max_tier: _common_pb2.Tier
    model: str
    def __init__(self, min_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., max_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., model: _Optional[str] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("tenant_id", "messages", "sampling", "cache", "routing", "request_id", "session_id", "tools", "response_format")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    sampling: _common_pb2.SamplingParams
    cache: CachePolicy
    routing: RoutingPolicy
    request_id: str
    session_id: str
    tools: _common_pb2.ToolConfig
    response_format: _common_pb2.ResponseFormat
    def __init__(self, tenant_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., cache: _Optional[_Union[CachePolicy, _Mapping]] = ..., routing: _Optional[_Union[RoutingPolicy, _Mapping]] = ..., request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., tools: _Optional[_Union[_common_pb2.ToolConfig, _Mapping]] = ..., response_format: _Optional[_Union[_common_pb2.ResponseFormat, _Mapping]] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ("request_id", "text", "model", "provider", "tier", "complexity_score", "cached", "cache_status", "cache_similarity", "usage", "cost", "baseline_cost_usd", "saving_usd", "savings", "attempts", "finish_reason", "classified_tier", "baseline_cost_micro_usd", "saving_micro_usd", "tool_calls")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CACHE_STATUS_FIELD_NUMBER: _ClassVar[int]
    CACHE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_USD_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIED_TIER_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    text: str
    model: str
    provider: str
    tier: _common_pb2.Tier
    complexity_score: float
    cached: bool
    cache_status: CacheStatus
    cache_similarity: float
    usage: _common_pb2.TokenUsage
    cost: _common_pb2.CostBreakdown
    baseline_cost_usd: float
    saving_usd: float
    savings: _common_pb2.LayerSavings
    attempts: int
    finish_reason: str
    classified_tier: _common_pb2.Tier
    baseline_cost_micro_usd: int
    saving_micro_usd: int
    tool_calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolCall]
    def __init__(self, request_id: _Optional[str] = ..., text: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., complexity_score: _Optional[float] = ..., cached: _Optional[bool] = ..., cache_status: _Optional[_Union[CacheStatus, str]] = ..., cache_similarity: _Optional[float] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., baseline_cost_usd: _Optional[float] = ..., saving_usd: _Optional[float] = ..., savings: _Optional[_Union[_common_pb2.LayerSavings, _Mapping]] = ..., attempts: _Optional[int] = ..., finish_reason: _Optional[str] = ..., classified_tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., baseline_cost_micro_usd: _Optional[int] = ..., saving_micro_usd: _Optional[int] = ..., tool_calls: _Optional[_Iterable[_Union[_common_pb2.ToolCall, _Mapping]]] = ...) -> None: ...

class StreamCompleteRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: CompleteRequest
    def __init__(self, request: _Optional[_Union[CompleteRequest, _Mapping]] = ...) -> None: ...

class StreamCompleteResponse(_message.Message):
    __slots__ = ("text_delta", "final", "tool_call_delta")
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    text_delta: str
    final: CompleteResponse
    tool_call_delta: _common_pb2.ToolCallDelta
    def __init__(self, text_delta: _Optional[str] = ..., final: _Optional[_Union[CompleteResponse, _Mapping]] = ..., tool_call_delta: _Optional[_Union[_common_pb2.ToolCallDelta, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class LimitUsage(_message.Message):
    __slots__ = ("key_id", "requests_per_minute", "tokens_per_minute", "budget_per_day_usd", "budget_per_day_micro_usd", "budget_per_month_usd", "budget_per_month_micro_usd", "spent_today_usd", "spent_today_micro_usd", "spent_this_month_usd", "spent_this_month_micro_usd", "requests_available", "tokens_available")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_DAY_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_DAY_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_MONTH_USD_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_MONTH_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_TODAY_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_TODAY_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_THIS_MONTH_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_THIS_MONTH_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    requests_per_minute: int
    tokens_per_minute: int
    budget_per_day_usd: float
    budget_per_day_micro_usd: int
    budget_per_month_usd: float
    budget_per_month_micro_usd: int
    spent_today_usd: float
    spent_today_micro_usd: int
    spent_this_month_usd: float
    spent_this_month_micro_usd: int
    requests_available: float
    tokens_available: float
    def __init__(self, key_id: _Optional[str] = ..., requests_per_minute: _Optional[int] = ..., tokens_per_minute: _Optional[int] = ..., budget_per_day_usd: _Optional[float] = ..., budget_per_day_micro_usd: _Optional[int] = ..., budget_per_month_usd: _Optional[float] = ..., budget_per_month_micro_usd: _Optional[int] = ..., spent_today_usd: _Optional[float] = ..., spent_today_micro_usd: _Optional[int] = ..., spent_this_month_usd: _Optional[float] = ..., spent_this_month_micro_usd: _Optional[int] = ..., requests_available: _Optional[float] = ..., tokens_available: _Optional[float] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("requests", "exact_hits", "semantic_hits", "cache_unavailable", "tier_counts", "cost_usd", "baseline_cost_usd", "saving_usd", "savings", "errors", "cache_lookups_timed_out", "cache_lookups_busy", "cache_stores_dropped", "cache_stores_failed", "cache_stores_pending", "cache_stores", "classifier_busy", "cost_micro_usd", "baseline_cost_micro_usd", "saving_micro_usd", "tenant_id", "limited", "limits_enforced", "limits", "routing_quality")
    class TierCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    EXACT_HITS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TIER_COUNTS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_USD_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CACHE_LOOKUPS_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    CACHE_LOOKUPS_BUSY_FIELD_NUMBER: _ClassVar[int]
    CACHE_STORES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    CACHE_STORES_FAILED_FIELD_NUMBER: _ClassVar[int]
    CACHE_STORES_PENDING_FIELD_NUMBER: _ClassVar[int]
    CACHE_STORES_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_BUSY_FIELD_NUMBER: _ClassVar[int]
    COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_ENFORCED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_QUALITY_FIELD_NUMBER: _ClassVar[int]
    requests: int
    exact_hits: int
    semantic_hits: int
    cache_unavailable: int
    tier_counts: _containers.ScalarMap[str, int]
    cost_usd: float
    baseline_cost_usd: float
    saving_usd: float
    savings: _common_pb2.LayerSavings
    errors: int
    cache_lookups_timed_out: int
    cache_lookups_busy: int
    cache_stores_dropped: int
    cache_stores_failed: int
    cache_stores_pending: int
    cache_stores: int
    classifier_busy: int
    cost_micro_usd: int
    baseline_cost_micro_usd: int
    saving_micro_usd: int
    tenant_id: str
    limited: int
    limits_enforced: bool
    limits: _containers.RepeatedCompositeFieldContainer[LimitUsage]
    routing_quality: RoutingQuality
    def __init__(self, requests: _Optional[int] = ..., exact_hits: _Optional[int] = ..., semantic_hits: _Optional[int] = ..., cache_unavailable: _Optional[int] = ..., tier_counts: _Optional[_Mapping[str, int]] = ..., cost_usd: _Optional[float] = ..., baseline_cost_usd: _Optional[float] = ..., saving_usd: _Optional[float] = ..., savings: _Optional[_Union[_common_pb2.LayerSavings, _Mapping]] = ..., errors: _Optional[int] = ..., cache_lookups_timed_out: _Optional[int] = ..., cache_lookups_busy: _Optional[int] = ..., cache_stores_dropped: _Optional[int] = ..., cache_stores_failed: _Optional[int] = ..., cache_stores_pending: _Optional[int] = ..., cache_stores: _Optional[int] = ..., classifier_busy: _Optional[int] = ..., cost_micro_usd: _Optional[int] = ..., baseline_cost_micro_usd: _Optional[int] = ..., saving_micro_usd: _Optional[int] = ..., tenant_id: _Optional[str] = ..., limited: _Optional[int] = ..., limits_enforced: _Optional[bool] = ..., limits: _Optional[_Iterable[_Union[LimitUsage, _Mapping]]] = ..., routing_quality: _Optional[_Union[RoutingQuality, _Mapping]] = ...) -> None: ...

class ReportFeedbackRequest(_message.Message):
    __slots__ = ("tenant_id", "request_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    request_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportFeedbackResponse(_message.Message):
    __slots__ = ("request_id", "cache_status", "entries_removed", "verdict_counted")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_STATUS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_COUNTED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    cache_status: CacheStatus
    entries_removed: int
    verdict_counted: bool
    def __init__(self, request_id: _Optional[str] = ..., cache_status: _Optional[_Union[CacheStatus, str]] = ..., entries_removed: _Optional[int] = ..., verdict_counted: _Optional[bool] = ...) -> None: ...

class TierQuality(_message.Message):
    __slots__ = ("tier", "verdicts", "as_good", "quality_retained", "lower_bound", "total_verdicts", "total_as_good", "served")
    TIER_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    AS_GOOD_FIELD_NUMBER: _ClassVar[int]
    QUALITY_RETAINED_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AS_GOOD_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    tier: _common_pb2.Tier
    verdicts: int
    as_good: int
    quality_retained: float
    lower_bound: float
    total_verdicts: int
    total_as_good: int
    served: int
    def __init__(self, tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., verdicts: _Optional[int] = ..., as_good: _Optional[int] = ..., quality_retained: _Optional[float] = ..., lower_bound: _Optional[float] = ..., total_verdicts: _Optional[int] = ..., total_as_good: _Optional[int] = ..., served: _Optional[int] = ...) -> None: ...

class RoutingQuality(_message.Message):
    __slots__ = ("tenant_id", "tiers", "quality_retained", "lower_bound", "target", "verdicts", "min_verdicts", "threshold_offset", "threshold_moves", "shadow_rate")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_RETAINED_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    MIN_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MOVES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_RATE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    tiers: _containers.RepeatedCompositeFieldContainer[TierQuality]
    quality_retained: float
    lower_bound: float
    target: float
    verdicts: int
    min_verdicts: int
    threshold_offset: float
    threshold_moves: int
    shadow_rate: float
    def __init__(self, tenant_id: _Optional[str] = ..., tiers: _Optional[_Iterable[_Union[TierQuality, _Mapping]]] = ..., quality_retained: _Optional[float] = ..., lower_bound: _Optional[float] = ..., target: _Optional[float] = ..., verdicts: _Optional[int] = ..., min_verdicts: _Optional[int] = ..., threshold_offset: _Optional[float] = ..., threshold_moves: _Optional[int] = ..., shadow_rate: _Optional[float] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("tenant_id", "requests")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    requests: _containers.RepeatedCompositeFieldContainer[CompleteRequest]
    def __init__(self, tenant_id: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[CompleteRequest, _Mapping]]] = ...) -> None: ...

class BatchItemResult(_message.Message):
    __slots__ = ("request_id", "status", "response", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: BatchItemStatus
    response: CompleteResponse
    error: str
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[BatchItemStatus, str]] = ..., response: _Optional[_Union[CompleteResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class BatchCounts(_message.Message):
    __slots__ = ("total", "pending", "succeeded", "errored", "canceled", "expired", "cache_hits")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    ERRORED_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    total: int
    pending: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    cache_hits: int
    def __init__(self, total: _Optional[int] = ..., pending: _Optional[int] = ..., succeeded: _Optional[int] = ..., errored: _Optional[int] = ..., canceled: _Optional[int] = ..., expired: _Optional[int] = ..., cache_hits: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("batch_id", "tenant_id", "status", "counts", "results", "cost", "baseline_cost_usd", "saving_usd", "savings", "provider_batch_ids", "created_at", "ended_at", "next_results_offset", "baseline_cost_micro_usd", "saving_micro_usd")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_USD_FIELD_NUMBER: _ClassVar[int]
    SAVINGS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_BATCH_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESULTS_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    SAVING_MICRO_USD_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    tenant_id: str
    status: BatchStatus
    counts: BatchCounts
    results: _containers.RepeatedCompositeFieldContainer[BatchItemResult]
    cost: _common_pb2.CostBreakdown
    baseline_cost_usd: float
    saving_usd: float
    savings: _common_pb2.LayerSavings
    provider_batch_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    ended_at: float
    next_results_offset: int
    baseline_cost_micro_usd: int
    saving_micro_usd: int
    def __init__(self, batch_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., status: _Optional[_Union[BatchStatus, str]] = ..., counts: _Optional[_Union[BatchCounts, _Mapping]] = ..., results: _Optional[_Iterable[_Union[BatchItemResult, _Mapping]]] = ..., cost: _Optional[_Union[_common_pb2.CostBreakdown, _Mapping]] = ..., baseline_cost_usd: _Optional[float] = ..., saving_usd: _Optional[float] = ..., savings: _Optional[_Union[_common_pb2.LayerSavings, _Mapping]] = ..., provider_batch_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., next_results_offset: _Optional[int] = ..., baseline_cost_micro_usd: _Optional[int] = ..., saving_micro_usd: _Optional[int] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("batch_id", "tenant_id", "include_results", "results_offset", "results_limit")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESULTS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    tenant_id: str
    include_results: bool
    results_offset: int
    results_limit: int
    def __init__(self, batch_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., include_results: _Optional[bool] = ..., results_offset: _Optional[int] = ..., results_limit: _Optional[int] = ...) -> None: ...

class GetBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class CancelBatchRequest(_message.Message):
    __slots__ = ("batch_id", "tenant_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    tenant_id: str
    def __init__(self, batch_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class CancelBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...
