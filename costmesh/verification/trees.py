"""A gradient-boosted tree ensemble as plain arrays, evaluated with numpy.

Trained with scikit-learn's HistGradientBoostingClassifier (`from_sklearn`), stored as arrays
in the artifact, so serving needs neither scikit-learn nor pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left")


@dataclass(frozen=True)
class TreeEnsemble:
    feature: np.ndarray       # int32, per node (all trees concatenated)
    threshold: np.ndarray     # float64: go left when x <= threshold
    left: np.ndarray          # int32, absolute node index
    right: np.ndarray         # int32
    leaf: np.ndarray          # bool
    value: np.ndarray         # float64, leaf value
    missing_left: np.ndarray  # bool: NaN goes left
    roots: np.ndarray         # int32, absolute index of each tree's root
    baseline: float

    @classmethod
    def from_sklearn(cls, model) -> "TreeEnsemble":
        parts: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
        roots, offset = [], 0
        for (predictor,) in model._predictors:  # one tree per iteration (binary classification)
            nodes = predictor.nodes
            roots.append(offset)
            parts["feature"].append(nodes["feature_idx"].astype(np.int32))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(nodes["left"].astype(np.int32) + offset)
            parts["right"].append(nodes["right"].astype(np.int32) + offset)
            parts["leaf"].append(nodes["is_leaf"].astype(bool))
            parts["value"].append(nodes["value"].astype(np.float64))
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            offset += len(nodes)
        arrays = {f: np.concatenate(v) for f, v in parts.items()}
        return cls(**arrays, roots=np.asarray(roots, dtype=np.int32),
                   baseline=float(np.ravel(model._baseline_prediction)[0]))

    def to_arrays(self, prefix: str = "tree_") -> dict[str, np.ndarray]:
        out = {prefix + f: getattr(self, f) for f in FIELDS}
        out[prefix + "roots"] = self.roots
        out[prefix + "baseline"] = np.asarray([self.baseline])
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "tree_") -> "TreeEnsemble":
        kwargs = {f: np.asarray(arrays[prefix + f]) for f in FIELDS}
        return cls(**kwargs, roots=np.asarray(arrays[prefix + "roots"]),
                   baseline=float(np.asarray(arrays[prefix + "baseline"])[0]))

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of the rows of `x`: every tree at once, one step per level."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()  # (rows, trees)
        rows = np.arange(len(x))[:, None]
        active = ~self.leaf[node]
        while active.any():
            values = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(active, step, node)
            active = ~self.leaf[node]
        return self.baseline + self.value[node].sum(axis=1)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))
