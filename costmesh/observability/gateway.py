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


def gateway_observability(runtime, *, max_tenants: int = DEFAULT_MAX_TENANTS, max_models: int = DEFAULT_MAX_MODELS,
                          records_dir: str | None = None, log_content: bool = False) -> GatewayObservability:
    """Span attributes, the spend metrics (tenant and model labels bounded), the cost records
    (with `records_dir`) and, only with `log_content`, prompt and answer text in the logs."""
    observers: list[Any] = [AnswerSpan()]
    closers: list[Callable[[], None]] = []
    observers.append(GatewayMetrics(runtime.meter, max_tenants=max_tenants, max_models=max_models))
    if records_dir:
        recorder = CostRecorder(records_dir)
        observers.append(recorder)
        closers.append(recorder.close)
        runtime.log.info("cost records on", directory=records_dir)
    else:
        runtime.log.info("cost records off: set COSTMESH_RECORDS_DIR to keep one per request")
    if log_content:
        observers.append(ContentLog())
        runtime.log.warning("prompt and answer text will be logged (COSTMESH_LOG_CONTENT)")
    return GatewayObservability(observers, closers)
