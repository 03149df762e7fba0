"""The model catalog: models, their prices and the tiers they serve, from one TOML file."""

from costmesh.catalog.model import Catalog, ModelSpec, Tier, TierSpec, load_catalog

__all__ = ["Catalog", "ModelSpec", "Tier", "TierSpec", "load_catalog"]
