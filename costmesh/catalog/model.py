"""Catalog data types and the loader. Prices are USD per million tokens."""

from __future__ import annotations

import enum
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from costmesh.errors import ConfigError
from costmesh.output_spec import Capability

DEFAULT_CATALOG = Path(__file__).with_name("models.toml")


class Tier(enum.IntEnum):
    """Complexity tiers, cheapest first. Values match `costmesh.common.v1.Tier`."""

    TRIVIAL = 1
    SIMPLE = 2
    MODERATE = 3
    COMPLEX = 4

    def __str__(self) -> str:
        """`simple`: the name every surface shows (its value, 2, is what the protos carry)."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> "Tier":
        try:
            return cls[name.upper()]
        except KeyError:
            raise ConfigError(f"unknown tier {name!r}; expected one of {[t.name.lower() for t in cls]}") from None


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: str
    input: float
    output: float
    cache_read: float = 1.0
    cache_write_5m: float = 1.0
    cache_write_1h: float = 1.0
    context_window: int = 128_000
    min_cacheable_tokens: int = 1024
    replay: str = "strong"
    tier: Tier = Tier.COMPLEX  # the cheapest tier listing this model; set by the loader
    capabilities: frozenset[Capability] = frozenset()  # tools, images, json_schema: what it can serve

    def supports(self, needs: frozenset[Capability]) -> bool:
        return needs <= self.capabilities


@dataclass(frozen=True)
class TierSpec:
    tier: Tier
    models: tuple[str, ...]
    deadline_s: float


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    tiers: dict[Tier, TierSpec]
    premium_model: str
    batch_discount: float
    embedding_model: str
    embedding_usd_per_mtok: float
    source: str = field(default="")

    def model(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            from costmesh.errors import InvalidRequest

            raise InvalidRequest(f"model: {model_id!r} is not in the catalog") from None

    @property
    def premium(self) -> ModelSpec:
        return self.models[self.premium_model]

    def tier_models(self, tier: Tier) -> tuple[ModelSpec, ...]:
        return tuple(self.models[m] for m in self.tiers[tier].models)


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """Load the catalog from `path`, `$COSTMESH_CATALOG`, or the packaged default."""
    path = Path(path or os.environ.get("COSTMESH_CATALOG") or DEFAULT_CATALOG)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read model catalog {path}: {exc}") from exc

    tiers: dict[Tier, TierSpec] = {}
    for name, spec in raw.get("tiers", {}).items():
        tier = Tier.parse(name)
        tiers[tier] = TierSpec(tier, tuple(spec["models"]), float(spec.get("deadline_s", 60)))
    missing = [t.name.lower() for t in Tier if t not in tiers]
    if missing:
        raise ConfigError(f"catalog {path}: tiers missing: {missing}")

    cheapest_tier: dict[str, Tier] = {}
    for tier in sorted(tiers):
        for model_id in tiers[tier].models:
            cheapest_tier.setdefault(model_id, tier)

    models: dict[str, ModelSpec] = {}
    for model_id, spec in raw.get("models", {}).items():
        try:
            capabilities = frozenset(Capability(c) for c in spec.pop("capabilities", []))
            models[model_id] = ModelSpec(id=model_id, tier=cheapest_tier.get(model_id, Tier.COMPLEX),
                                         capabilities=capabilities, **spec)
        except ValueError as exc:
            raise ConfigError(f"catalog {path}: model {model_id!r}: capabilities: {exc}; "
                              f"expected some of {[c.value for c in Capability]}") from exc
        except TypeError as exc:
            raise ConfigError(f"catalog {path}: model {model_id!r}: {exc}") from exc
    unknown = sorted({m for t in tiers.values() for m in t.models} - models.keys())
    if unknown:
        raise ConfigError(f"catalog {path}: tiers name models with no entry: {unknown}")

    defaults = raw.get("defaults", {})
    premium = defaults.get("premium_model", "")
    if premium not in models:
        raise ConfigError(f"catalog {path}: premium_model {premium!r} is not a model of the catalog")
    embedding = raw.get("embedding", {})
    return Catalog(
        models=models,
        tiers=tiers,
        premium_model=premium,
        batch_discount=float(defaults.get("batch_discount", 0.5)),
        embedding_model=embedding.get("model", "all-MiniLM-L6-v2"),
        embedding_usd_per_mtok=float(embedding.get("usd_per_mtok", 0.0)),
        source=str(path),
    )
