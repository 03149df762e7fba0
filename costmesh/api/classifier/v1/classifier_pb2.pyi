from costmesh.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("messages", "embedding", "strategy", "threshold_offset")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    strategy: str
    threshold_offset: float
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., embedding: _Optional[_Iterable[float]] = ..., strategy: _Optional[str] = ..., threshold_offset: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("tier", "score", "signals", "strategy", "embedding", "embedding_model", "threshold")
    TIER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    tier: _common_pb2.Tier
    score: float
    signals: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    embedding_model: str
    threshold: float
    def __init__(self, tier: _Optional[_Union[_common_pb2.Tier, str]] = ..., score: _Optional[float] = ..., signals: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., embedding_model: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...
