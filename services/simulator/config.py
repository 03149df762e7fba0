"""Simulator configuration: one frozen dataclass, read from the environment or given in code."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costmesh.config import Env
from costmesh.errors import ConfigError

BOOK_GLOB = "*_routing_*.jsonl.gz"


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator can be told. Env names are in `from_env`."""

    host: str = "127.0.0.1"
    port: int = 8089
    latency_ms: float = 0.0  # before the first token
    ms_per_output_token: float = 0.0
    books: tuple[str, ...] | None = None  # None: every routing book under data_dir
    data_dir: str | None = None  # None: <repo root>/../shared/data
    catalog_path: str | None = None  # None: $COSTMESH_CATALOG or the packaged catalog
    fault_429_rate: float = 0.0
    fault_500_rate: float = 0.0
    fault_503_rate: float = 0.0
    fault_529_rate: float = 0.0
    retry_after_s: float = 1.0  # the retry-after a 429 carries unless x-sim-retry-after says otherwise
    timeout_fault_s: float = 300.0  # how long a "timeout" fault holds the request before a 504
    seed: int = 0
    openai_cache_ttl_s: float = 600.0  # OpenAI in-memory prefix retention, refreshed on use
    batch_latency_s: float = 0.0  # how long a batch takes before it ends (>= 24h: it expires instead)
    require_auth: bool = True
    shutdown_timeout_s: float = 5.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Env | Mapping[str, str] | None = None) -> SimulatorConfig:
        env = env if isinstance(env, Env) else Env(env)
        books = env.list("SIM_BOOKS")
        return cls(
            host=env.str("SIM_HOST", cls.host),
            port=env.int("SIM_PORT", cls.port),
            latency_ms=env.float("SIM_LATENCY_MS", cls.latency_ms),
            ms_per_output_token=env.float("SIM_MS_PER_OUTPUT_TOKEN", cls.ms_per_output_token),
            books=tuple(books) if books else None,
            data_dir=env.optional("COSTMESH_DATA_DIR"),
            catalog_path=env.optional("COSTMESH_CATALOG"),
            fault_429_rate=env.float("SIM_FAULT_429_RATE", 0.0),
            fault_500_rate=env.float("SIM_FAULT_500_RATE", 0.0),
            fault_503_rate=env.float("SIM_FAULT_503_RATE", 0.0),
            fault_529_rate=env.float("SIM_FAULT_529_RATE", 0.0),
            retry_after_s=env.float("SIM_RETRY_AFTER_S", cls.retry_after_s),
            timeout_fault_s=env.float("SIM_TIMEOUT_FAULT_S", cls.timeout_fault_s),
            seed=env.int("SIM_SEED", cls.seed),
            openai_cache_ttl_s=env.float("SIM_OPENAI_CACHE_TTL_S", cls.openai_cache_ttl_s),
            batch_latency_s=env.float("SIM_BATCH_LATENCY_S", cls.batch_latency_s),
            require_auth=env.bool("SIM_REQUIRE_AUTH", cls.require_auth),
            shutdown_timeout_s=env.float("SIM_SHUTDOWN_TIMEOUT_S", cls.shutdown_timeout_s),
            log_level=env.str("COSTMESH_LOG_LEVEL", cls.log_level),
        ).validated()

    def with_overrides(self, **overrides: Any) -> SimulatorConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown simulator config fields {unknown}; known: {sorted(names)}")
        if isinstance(overrides.get("books"), (list, str)):
            books = overrides["books"]
            overrides["books"] = (books,) if isinstance(books, str) else tuple(books)
        return dataclasses.replace(self, **overrides).validated()

    def validated(self) -> SimulatorConfig:
        for name in ("fault_429_rate", "fault_500_rate", "fault_503_rate", "fault_529_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"simulator {name} must be within [0, 1], got {getattr(self, name)}")
        if self.latency_ms < 0 or self.ms_per_output_token < 0 or self.batch_latency_s < 0:
            raise ConfigError("simulator latencies must not be negative")
        return self

    def book_paths(self) -> list[Path]:
        """The books to load: `books` if given, else every routing book in the data dir (none if it is missing)."""
        if self.books is not None:
            return [Path(p) for p in self.books]
        data_dir = Path(self.data_dir) if self.data_dir else default_data_dir()
        if not data_dir.is_dir():
            return []
        return sorted(data_dir.glob(BOOK_GLOB))


def default_data_dir() -> Path:
    """`<repo root>/../shared/data`, the repo root being the folder holding the `costmesh` package."""
    import costmesh

    repo_root = Path(costmesh.__file__).resolve().parent.parent
    return repo_root.parent / "shared" / "data"
