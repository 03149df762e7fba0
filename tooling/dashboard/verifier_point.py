"""The cache verifier's operating point, as the cache service picks it from the same settings:
COSTMESH_CACHE_VERIFIER (learned, rules or cosine), COSTMESH_CACHE_MAX_FALSE_HIT_RATE (the
operator's false-hit bound) and COSTMESH_CACHE_VERIFIER_ARTIFACT, read from this process's
environment; for the learned verifier, the row of the artifact's calibration table for that bound.
The cache logs the same figures when it starts ("cache ready") and reports them in its GetStats.
"""

from __future__ import annotations

from costmesh.config import Env
from costmesh.errors import CostmeshError
from costmesh.services.cache.config import CacheConfig

SOURCE = "configuration: COSTMESH_CACHE_VERIFIER, COSTMESH_CACHE_MAX_FALSE_HIT_RATE and the verifier artifact"


def operating_point(env: Env) -> dict:
    """What GET /api/v1/verifier answers; `available` false (with a `reason`) when the settings
    or the artifact cannot be read."""
    try:
        config = CacheConfig.from_env(env)
        if config.verifier in ("rules", "cosine"):
            name = "rules-v1" if config.verifier == "rules" else f"cosine-{config.min_similarity:g}"
            return {"available": True, "source": SOURCE, "verifier": name,
                    "min_similarity": config.min_similarity}
        from costmesh.verification.artifact import DEFAULT_ARTIFACT, VerifierArtifact

        artifact = VerifierArtifact.load(config.verifier_artifact or DEFAULT_ARTIFACT)
        point = artifact.operating_point(config.max_false_hit_rate)
    except CostmeshError as exc:
        return {"available": False, "source": SOURCE, "reason": str(exc)[:300]}
    name = "learned-v1+cross-encoder" if artifact.cross_encoder is not None else "learned-v1"
    return {
        "available": True,
        "source": SOURCE,
        "verifier": name,
        "max_false_hit_rate": config.max_false_hit_rate,
        "threshold": point.threshold,
        "calibrated_false_hit_rate": point.false_hit_rate,
        "calibrated_precision": point.quora_precision,
        "calibrated_recall": point.quora_recall,
        "calibrated_trap_recall": point.traps_recall,
        "min_similarity": artifact.min_similarity,
    }
