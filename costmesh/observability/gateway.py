"""What the gateway hands its pipeline to observe every request: span attributes, metrics,
cost records, and (only when the operator asks) the content log.

Env: COSTMESH_RECORDS_DIR (cost records; unset: none are written), COSTMESH_LOG_CONTENT
(log prompt and answer text; default off), COSTMESH_METRICS_MAX_TENANTS / _MAX_MODELS (distinct
tenant and model label values per replica before the rest count as `other`). The cache's
figures are on the cache's own metrics endpoint: the gateway's scrape calls no other service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from costmesh.cost_records import CostRecorder
from costmesh.errors import ConfigError
from costmesh.observability.answer_span import AnswerSpan, ContentLog
from costmesh.observability.gateway_metrics import DEFAULT_MAX_MODELS, DEFAULT_MAX_TENANTS, GatewayMetrics


@dataclass
class GatewayObservability:
    observers: list[Any]
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close_now(self) -> None:
        for close in self._closers:
            close()
        self._closers.clear()


def _at_least_one(env, name: str, default: int) -> int:
    value = env.int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def gateway_observability(runtime) -> GatewayObservability:
    env = runtime.env
    observers: list[Any] = [AnswerSpan()]
    closers: list[Callable[[], None]] = []
    observers.append(GatewayMetrics(
        runtime.meter,
        max_tenants=_at_least_one(env, "COSTMESH_METRICS_MAX_TENANTS", DEFAULT_MAX_TENANTS),
        max_models=_at_least_one(env, "COSTMESH_METRICS_MAX_MODELS", DEFAULT_MAX_MODELS),
    ))
    records_dir = env.optional("COSTMESH_RECORDS_DIR")
    if records_dir:
        recorder = CostRecorder(records_dir)
        observers.append(recorder)
        closers.append(recorder.close)
        runtime.log.info("cost records on", directory=records_dir)
    else:
        runtime.log.info("cost records off: set COSTMESH_RECORDS_DIR to keep one per request")
    if env.bool("COSTMESH_LOG_CONTENT", False):
        observers.append(ContentLog())
        runtime.log.warning("prompt and answer text will be logged (COSTMESH_LOG_CONTENT)")
    return GatewayObservability(observers, closers)
