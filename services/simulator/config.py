"""Simulator configuration: one settings class, read from the environment or given in code."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.settings import CommaList, Lowercase, Settings, split_commas

BOOK_GLOB = "*_routing_*.jsonl.gz"


class SimulatorConfig(Settings):
    """Everything the simulator can be told (`SIM_*`, and the mesh's data dir, catalog and log level)."""

    model_config = SettingsConfigDict(env_prefix="SIM_")
    used_by: ClassVar[str] = "simulator"

    host: str = Field("127.0.0.1", min_length=1, description="the simulator's listen address")
    port: int = Field(8089, ge=0, le=65535, description="the simulator's listen port (0: a free one)")
    latency_ms: float = Field(0.0, ge=0.0, description="the simulator's latency before the first token")
    ms_per_output_token: float = Field(0.0, ge=0.0, description="the simulator's latency per output token")
    books: CommaList | None = Field(None, description="the routing books the simulator answers from, "
                                    "comma-separated (default: every routing book under `COSTMESH_DATA_DIR`)")
    data_dir: str | None = Field(None, validation_alias="COSTMESH_DATA_DIR",
                                 description="where the simulator finds its routing books (default: "
                                 "`../shared/data` beside the repository)")
    catalog_path: str | None = Field(None, validation_alias="COSTMESH_CATALOG",
                                     description="the model catalog file (default: the packaged one)")
    fault_429_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of simulator calls answered 429")
    fault_500_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of simulator calls answered 500")
    fault_503_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of simulator calls answered 503")
    fault_529_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of simulator calls answered 529 "
                                  "(Anthropic's overloaded)")
    retry_after_s: float = Field(1.0, ge=0.0, description="the retry-after a simulated 429 carries (unless "
                                 "`x-sim-retry-after` says otherwise)")
    timeout_fault_s: float = Field(300.0, ge=0.0, description="how long a simulated timeout holds the request "
                                   "before a 504")
    seed: int = Field(0, description="the seed of the simulator's random faults")
    openai_cache_ttl_s: float = Field(600.0, ge=0.0, description="the simulator's OpenAI in-memory prefix "
                                      "retention, refreshed on use")
    batch_latency_s: float = Field(0.0, ge=0.0, description="how long a simulated batch takes before it ends "
                                   "(24 h or more: it expires instead)")
    require_auth: bool = Field(True, description="the simulator refuses calls without an API key")
    shutdown_timeout_s: float = Field(5.0, ge=0.0, description="on SIGTERM, the simulator's calls in flight "
                                      "finish within this")
    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], Lowercase] = Field(
        "info", validation_alias="COSTMESH_LOG_LEVEL", description="log level")

    @field_validator("books", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return split_commas(value) or None  # only commas: as unset
        return tuple(value) if isinstance(value, list) else value

    @classmethod
    def from_env(cls, env: Env | Mapping[str, str] | None = None) -> SimulatorConfig:
        return cls.load(env)

    def with_overrides(self, **overrides: Any) -> SimulatorConfig:
        """These settings with some fields given in code (validated as the environment's are)."""
        names = set(type(self).model_fields)
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown simulator config fields {unknown}; known: {sorted(names)}")
        if isinstance(overrides.get("books"), str):
            overrides["books"] = (overrides["books"],)
        try:
            return type(self)(**{**self.model_dump(), **overrides})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"simulator config: {problems}") from None

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
