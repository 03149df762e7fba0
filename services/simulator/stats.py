"""Request and token counters per model, for tests and benchmarks (`GET /_sim/stats`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ModelStats:
    requests: int = 0
    errors: int = 0
    faults: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class Stats:
    def __init__(self) -> None:
        self.models: dict[str, ModelStats] = {}
        self.endpoints: Counter[str] = Counter()

    def model(self, model: str) -> ModelStats:
        return self.models.setdefault(model, ModelStats())

    def request(self, endpoint: str, model: str | None) -> None:
        self.endpoints[endpoint] += 1
        if model:
            self.model(model).requests += 1

    def usage(self, model: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> None:
        stats = self.model(model)
        stats.input_tokens += input_tokens
        stats.output_tokens += output_tokens
        stats.cache_read_tokens += cache_read
        stats.cache_write_tokens += cache_write

    def reset(self) -> None:
        self.models.clear()
        self.endpoints.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": sum(self.endpoints.values()),
            "endpoints": dict(self.endpoints),
            "models": {name: asdict(stats) for name, stats in sorted(self.models.items())},
        }
