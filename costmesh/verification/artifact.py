"""The verifier artifact: the tree ensemble, its feature set, the cross-encoder adapter (when
trained with one) and the operating-point table.

One `.npz` file (arrays only, loaded with `allow_pickle=False`) with a JSON `meta` entry. The
table maps each candidate threshold on P(same answer) to the false-hit rate and recall it gave
on held-out calibration data (Quora pairs and assistant traps), so the cache can pick the
threshold for the false-hit bound an operator sets without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from costmesh.errors import ConfigError
from costmesh.intervals import wilson_upper

from .cross_encoder import PREFIX as CROSS_PREFIX
from .cross_encoder import Adapter
from .lexical import veto
from .trees import TreeEnsemble

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
DEFAULT_ARTIFACT = ARTIFACT_DIR / "verifier-v1.npz"
FORMAT = "costmesh-verifier/3"
FORMATS = ("costmesh-verifier/1", "costmesh-verifier/2", FORMAT)  # /1, /2 (without a head): trees only


@dataclass(frozen=True)
class OperatingPoint:
    """One row of the table. A false hit = a hit on a non-duplicate pair (a wrong answer served)."""

    threshold: float
    quora_false_hit_rate: float
    quora_precision: float
    quora_recall: float
    traps_false_hit_rate: float
    traps_recall: float

    @property
    def false_hit_rate(self) -> float:
        return max(self.quora_false_hit_rate, self.traps_false_hit_rate)


def blended(tree_probability: np.ndarray, other_logit: np.ndarray, weight: float) -> np.ndarray:
    """sigmoid(weight * other logit + (1 - weight) * logit of the trees' probability)."""
    p = np.clip(np.asarray(tree_probability, dtype=np.float64), 1e-6, 1 - 1e-6)
    z = weight * np.asarray(other_logit, dtype=np.float64) + (1.0 - weight) * np.log(p / (1.0 - p))
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def pick_operating_point(table: Sequence[OperatingPoint], negatives: dict[str, int],
                         max_false_hit_rate: float) -> OperatingPoint:
    """The lowest threshold (most reuse) whose calibration false-hit rate, on Quora pairs and on
    traps alike, is within the bound; the strictest row when none is.

    With the calibration sets' sizes (`negatives`, from the artifact's
    `meta["calibration_negatives"]`), the test is on the one-sided 95% Wilson upper bound of
    each rate, not the rate seen: a few hundred calibration traps cannot vouch for 5% on their own."""
    if not 0.0 <= max_false_hit_rate <= 1.0:
        raise ConfigError("max false-hit rate must be in [0, 1]")
    rows = sorted(table, key=lambda r: r.threshold)
    for row in rows:
        if (wilson_upper(row.quora_false_hit_rate, negatives.get("quora", 0)) <= max_false_hit_rate
                and wilson_upper(row.traps_false_hit_rate, negatives.get("traps", 0)) <= max_false_hit_rate):
            return row
    return rows[-1]


@dataclass(frozen=True)
class VerifierArtifact:
    ensemble: TreeEnsemble
    feature_names: tuple[str, ...]
    interactions: bool            # |u-v| and u*v appended to the features
    min_similarity: float         # KNN floor: candidates under it are never verified
    embedding_model: str
    table: tuple[OperatingPoint, ...]
    meta: dict = field(default_factory=dict)
    cross_encoder: Adapter | None = None  # the LoRA cross-encoder over the packaged MiniLM, when trained
    cross_blend: float = 0.0              # its logit's weight in the final blend
    vetoes: bool = False                  # reject lexical flips whatever the models say (`lexical.veto`)
    cross_int8: bool = False              # its logits, as calibrated, are the int8 model's (ONNX Runtime)

    def pair_rows(self, query: str, candidates: Sequence[str], encoded: Sequence[Any]) -> np.ndarray:
        """One row per candidate (`encoded`: the query's `Encoded` first): the features, then
        the |u-v|, u*v interactions when trained with them."""
        from .features import interaction_features, pair_features

        rows = []
        for text, enc in zip(candidates, encoded[1:]):
            parts = [pair_features(query, text, encoded[0], enc)]
            if self.interactions:
                parts.append(interaction_features(encoded[0], enc))
            rows.append(np.concatenate(parts))
        return np.stack(rows)

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """The trees' P(the cached answer serves the query) for rows of `pair_rows`. With a
        cross-encoder, the verifier's answer is this passed through `with_cross`."""
        return self.ensemble.probability(np.atleast_2d(np.asarray(rows, dtype=np.float64)))

    def veto(self, query: str, candidate: str) -> str | None:
        """Why the pair is rejected before scoring (an opposite word, a swapped name), if it is."""
        return veto(query, candidate) if self.vetoes else None

    def with_cross(self, probability: np.ndarray, cross_logits: np.ndarray) -> np.ndarray:
        """The final P(same answer): `probability` blended with the cross-encoder's logits."""
        if self.cross_encoder is None:
            return np.asarray(probability, dtype=np.float64)
        return blended(probability, cross_logits, self.cross_blend)

    def operating_point(self, max_false_hit_rate: float) -> OperatingPoint:
        """The table's row for the bound (see `pick_operating_point`)."""
        return pick_operating_point(self.table, self.meta.get("calibration_negatives") or {}, max_false_hit_rate)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, format=FORMAT, feature_names=list(self.feature_names),
                    interactions=self.interactions, min_similarity=self.min_similarity,
                    embedding_model=self.embedding_model, cross_blend=self.cross_blend, vetoes=self.vetoes,
                    cross_int8=self.cross_int8, table=[row.__dict__ for row in self.table])
        arrays = self.ensemble.to_arrays()
        # float32 / int16 where lossless enough: keeps the committed file small
        arrays["tree_threshold"] = arrays["tree_threshold"].astype(np.float32)
        arrays["tree_value"] = arrays["tree_value"].astype(np.float32)
        arrays["tree_feature"] = arrays["tree_feature"].astype(np.int16)
        if self.cross_encoder is not None:
            arrays.update(self.cross_encoder.arrays())
        with open(path, "wb") as handle:
            np.savez_compressed(handle, meta=np.asarray(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path = DEFAULT_ARTIFACT) -> "VerifierArtifact":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot load verifier artifact {path}: {exc}") from None
        if meta.get("format") not in FORMATS:
            raise ConfigError(f"{path}: not a {FORMAT} artifact")
        if any(k.startswith("head_") for k in arrays):
            raise ConfigError(f"{path}: has an attention head, which this version no longer serves: "
                              "retrain with costmesh train-verifier")
        try:
            cross = Adapter.from_arrays(arrays)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{path}: the cross-encoder adapter is incomplete: {exc}") from None
        arrays = {k: v for k, v in arrays.items() if not k.startswith(CROSS_PREFIX)}
        arrays["tree_threshold"] = arrays["tree_threshold"].astype(np.float64)
        arrays["tree_value"] = arrays["tree_value"].astype(np.float64)
        arrays["tree_feature"] = arrays["tree_feature"].astype(np.int32)
        table = tuple(OperatingPoint(**row) for row in meta.pop("table"))
        meta.pop("blend", None)  # format /2's head weight
        return cls(
            ensemble=TreeEnsemble.from_arrays(arrays),
            feature_names=tuple(meta.pop("feature_names")),
            interactions=bool(meta.pop("interactions")),
            min_similarity=float(meta.pop("min_similarity")),
            embedding_model=str(meta.pop("embedding_model")),
            table=table,
            cross_encoder=cross,
            cross_blend=float(meta.pop("cross_blend", 0.0)),
            vetoes=bool(meta.pop("vetoes", False)),
            cross_int8=bool(meta.pop("cross_int8", False)),
            meta=meta,
        )
