"""Picks the cascade's quality gate by name (env COSTMESH_ROUTER_GATE)."""

from __future__ import annotations

from costmesh.catalog import Tier
from costmesh.errors import ConfigError
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.routing.scorer import ArtifactSource

from .gate import HeuristicGate, QualityGate
from .learned_gate import LearnedGate


def build_gate(name: str, threshold: float = 0.5, *, artifact_path: str | None = None,
               max_tier: Tier = Tier.SIMPLE) -> QualityGate:
    """The gate called `name`: "heuristic", or "learned" (reads the router artifact at
    `artifact_path`, default the packaged one)."""
    if name == "heuristic":
        return HeuristicGate(threshold)
    if name == "learned":
        return LearnedGate(ArtifactSource(artifact_path or DEFAULT_ARTIFACT), HeuristicGate(threshold), max_tier)
    raise ConfigError(f"COSTMESH_ROUTER_GATE: unknown gate {name!r}; known: ['heuristic', 'learned']")
