"""Everything a running simulator holds, stored on the aiohttp app under `STATE_KEY`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from costmesh.catalog import Catalog, ModelSpec, load_catalog
from costmesh.services.simulator.batch_store import BatchStore
from costmesh.services.simulator.books import Books
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.errors import ApiError
from costmesh.services.simulator.faults import Faults
from costmesh.services.simulator.latency import Pacer
from costmesh.services.simulator.prefix_cache import PrefixCache, SimClock
from costmesh.services.simulator.schema_checks import SchemaChecker
from costmesh.services.simulator.stats import Stats
from costmesh.tokens import TokenCounter, get_counter


@dataclass
class SimState:
    config: SimulatorConfig
    catalog: Catalog
    books: Books
    counter: TokenCounter
    clock: SimClock
    pacer: Pacer
    faults: Faults
    anthropic_cache: PrefixCache
    openai_cache: PrefixCache
    batches: BatchStore
    stats: Stats = field(default_factory=Stats)
    schemas: SchemaChecker = field(default_factory=SchemaChecker)
    log: Any = field(default_factory=lambda: structlog.get_logger(service="simulator"))

    @classmethod
    def build(cls, config: SimulatorConfig) -> SimState:
        clock = SimClock()
        rates = {
            429: config.fault_429_rate,
            500: config.fault_500_rate,
            503: config.fault_503_rate,
            529: config.fault_529_rate,
        }
        return cls(
            config=config,
            catalog=load_catalog(config.catalog_path),
            books=Books.load(config.book_paths()),
            counter=get_counter(),
            clock=clock,
            pacer=Pacer(config),
            faults=Faults(rates, config.retry_after_s, config.seed),
            anthropic_cache=PrefixCache(clock),
            openai_cache=PrefixCache(clock),
            batches=BatchStore(clock, config.batch_latency_s),
        )

    def reset(self) -> None:
        """Forget caches, batches, files, faults, stats and clock moves."""
        self.anthropic_cache.clear()
        self.batches.clear()
        self.openai_cache.clear()
        self.faults.reset()
        self.stats.reset()
        self.clock.offset = 0.0

    def anthropic_model(self, model: str) -> ModelSpec:
        spec = self.catalog.models.get(model)
        if spec is None or spec.provider != "anthropic":
            raise ApiError(404, f"model: {model}")
        return spec

    def openai_model(self, model: str) -> ModelSpec:
        """Any catalog model not served by Anthropic speaks the OpenAI API."""
        spec = self.catalog.models.get(model)
        if spec is None or spec.provider == "anthropic":
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return spec


STATE_KEY = web.AppKey("costmesh_simulator_state", SimState)
