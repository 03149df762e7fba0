"""The trained router's artifact: one `.npz` file (numpy arrays, no pickle) holding

- `meta`: JSON (utf-8 bytes) with `format`, `format_version`, the embedding model id and
  dimensions, the feature names, the calibration (operating point, score bands, expected
  premium share and quality) and the training metadata (books, rows, split, held-out figures);
- the prompt model: `prompt.mean`, `prompt.scale` and its layers `prompt.w0`, `prompt.b0`, ...
  (ReLU between layers, a sigmoid at the end: zero hidden layers is logistic regression);
- optionally the outcome models `strong.*` and `weak.*` (the same form: P(that model is right));
- optionally the training prompts' embeddings `knn.vectors` (int8) and gains `knn.gains`;
- optionally the word model `text.buckets`, `text.idf`, `text.weights` (see `text_model`);
- `meta["ensemble"]`: the components mixed into the prompt score, in order, with the mean and
  standard deviation of each on held-out rows (each is standardised, then they are averaged);
- optionally the answer gate (a logistic regression over `answer_checks` features plus the
  prompt score): `gate.mean`, `gate.scale`, `gate.w0`, `gate.b0`;
- `trained_hashes`: 64-bit hashes of the normalised training prompts, so that evaluation can
  leave out rows the model was trained on.

Only plain numbers: loading runs no code. A file of another format or version is refused
with a ConfigError that says why.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from costmesh.errors import ConfigError

from .text_model import TextModel

FORMAT = "costmesh-router"
FORMAT_VERSION = 2  # 2: an ensemble of prompt model, outcome models, neighbours and word model
DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "router-v1.npz"


def prompt_hash(prompt: str) -> int:
    """A stable 64-bit hash of a prompt, whitespace-normalised (also the train/held-out split key)."""
    digest = hashlib.sha256(" ".join(prompt.split()).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


@dataclass
class Network:
    """Standardise, then dense layers with ReLU between them, then a sigmoid."""

    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.scale = np.asarray(self.scale, dtype=np.float32)
        self.weights = [np.asarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.asarray(b, dtype=np.float32).reshape(-1) for b in self.biases]
        if not self.weights or len(self.weights) != len(self.biases):
            raise ConfigError("router artifact: a network needs as many bias vectors as weight matrices")
        width = self.mean.shape[0]
        for w, b in zip(self.weights, self.biases):
            if w.ndim != 2 or w.shape[0] != width or w.shape[1] != b.shape[0]:
                raise ConfigError(f"router artifact: layer shapes do not chain ({w.shape} after width {width})")
            width = w.shape[1]
        if width != 1:
            raise ConfigError("router artifact: the last layer must have one output")

    @property
    def inputs(self) -> int:
        return int(self.mean.shape[0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(positive) for each row of `x`."""
        h = (np.asarray(x, dtype=np.float32) - self.mean) / self.scale
        if h.ndim != 2 or h.shape[1] != self.inputs:
            raise ValueError(f"expected rows of {self.inputs} features, got {h.shape}")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return _sigmoid(h[:, 0].astype(np.float64))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}.mean": self.mean, f"{prefix}.scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"{prefix}.w{i}"] = w
            out[f"{prefix}.b{i}"] = b
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "Network":
        try:
            layers = sorted(int(k[len(prefix) + 2 :]) for k in arrays if k.startswith(f"{prefix}.w"))
            return cls(
                arrays[f"{prefix}.mean"],
                arrays[f"{prefix}.scale"],
                [arrays[f"{prefix}.w{i}"] for i in layers],
                [arrays[f"{prefix}.b{i}"] for i in layers],
            )
        except KeyError as exc:
            raise ConfigError(f"router artifact: missing array {exc}") from None


@dataclass
class Neighbours:
    """The training prompts' embeddings (int8, unit vectors scaled by `scale`) and how much better
    the strong model did on each: a prompt's estimate is the (weighted) mean gain of its nearest."""

    vectors: np.ndarray
    gains: np.ndarray
    k: int
    scale: float

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.int8)
        self.gains = np.asarray(self.gains, dtype=np.float32).reshape(-1)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != self.gains.shape[0] or self.k < 1:
            raise ConfigError("router artifact: neighbour vectors and gains do not match")
        self._unpacked: np.ndarray | None = None

    @classmethod
    def build(cls, embeddings: np.ndarray, gains: np.ndarray, k: int) -> "Neighbours":
        embeddings = np.asarray(embeddings, dtype=np.float32)
        scale = float(127.0 / max(np.abs(embeddings).max(), 1e-6))
        return cls(np.round(embeddings * scale).astype(np.int8), gains, k, scale)

    def _similarities(self, embeddings: np.ndarray) -> np.ndarray:
        if self._unpacked is None:
            self._unpacked = self.vectors.astype(np.float32) / self.scale
        return np.asarray(embeddings, dtype=np.float32) @ self._unpacked.T

    def gains_of_nearest(self, embeddings: np.ndarray, specs: Sequence[tuple[int, float]]) -> list[np.ndarray]:
        """For each (k, temperature): the gain of the k nearest training prompts, averaged with weights
        exp(similarity / temperature) (temperature 0: a plain mean). One similarity pass for all."""
        sims = self._similarities(embeddings)
        out = []
        for k, temperature in specs:
            k = max(1, min(int(k), sims.shape[1]))
            nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            gains = self.gains[nearest].astype(np.float64)
            if temperature <= 0:
                out.append(gains.mean(axis=1))
                continue
            near = np.take_along_axis(sims, nearest, axis=1).astype(np.float64)
            weights = np.exp((near - near.max(axis=1, keepdims=True)) / temperature)
            out.append((gains * weights).sum(axis=1) / weights.sum(axis=1))
        return out


@dataclass
class RouterArtifact:
    prompt_model: Network
    meta: dict
    gate_model: Network | None = None
    trained_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    neighbours: Neighbours | None = None
    outcome_models: tuple[Network, Network] | None = None  # P(strong right), P(weak right)
    text_model: TextModel | None = None

    @property
    def embedding_model(self) -> str:
        return self.meta["embedding"]["model"]

    @property
    def embedding_dims(self) -> int:
        return int(self.meta["embedding"]["dims"])

    @property
    def calibration(self) -> dict:
        return self.meta["calibration"]

    @property
    def threshold(self) -> float:
        """Scores at or above it go to the strong tiers (the calibrated operating point)."""
        return float(self.meta["calibration"]["threshold"])

    @property
    def bands(self) -> list[float]:
        """Upper bounds (exclusive) of the trivial, simple and moderate tiers' scores."""
        return [float(b) for b in self.meta["calibration"]["bands"]]

    @property
    def gate_threshold(self) -> float | None:
        gate = self.meta.get("gate")
        return None if gate is None else float(gate["threshold"])

    def was_trained_on(self, prompts: Iterable[str]) -> np.ndarray:
        """A boolean per prompt: was it one of the training rows?"""
        hashes = np.array([prompt_hash(p) for p in prompts], dtype=np.uint64)
        return np.isin(hashes, self.trained_hashes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a temporary file renamed over the target), so a watcher never reads half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "format": FORMAT, "format_version": FORMAT_VERSION}
        arrays = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
            "trained_hashes": np.asarray(self.trained_hashes, dtype=np.uint64),
            **self.prompt_model.arrays("prompt"),
        }
        if self.gate_model is not None:
            arrays.update(self.gate_model.arrays("gate"))
        if self.outcome_models is not None:
            arrays.update(self.outcome_models[0].arrays("strong"))
            arrays.update(self.outcome_models[1].arrays("weak"))
        if self.neighbours is not None:
            arrays["knn.vectors"] = self.neighbours.vectors
            arrays["knn.gains"] = self.neighbours.gains.astype(np.float16)
            meta["neighbours"] = {"k": self.neighbours.k, "scale": self.neighbours.scale}
        if self.text_model is not None:
            arrays.update(self.text_model.arrays("text"))
            meta["text_model"] = self.text_model.meta()
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".router-", suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; an artifact is meant to be read
        os.replace(tmp, path)
        self.meta = meta
        return path


def load_artifact(path: str | os.PathLike | None = None) -> RouterArtifact:
    """Read and check an artifact (the packaged one by default)."""
    path = Path(path) if path else DEFAULT_ARTIFACT
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ConfigError(f"router artifact {path}: no such file (train one with `costmesh train-router`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"router artifact {path}: not a readable .npz file ({exc})") from None
    if "meta" not in arrays:
        raise ConfigError(f"router artifact {path}: no metadata")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"router artifact {path}: unreadable metadata ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"router artifact {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"router artifact {path}: format version {meta.get('format_version')!r}; this build reads {FORMAT_VERSION}"
        )
    for key in ("embedding", "calibration", "training", "features"):
        if key not in meta:
            raise ConfigError(f"router artifact {path}: metadata lacks {key!r}")
    prompt = Network.from_arrays(arrays, "prompt")
    gate = Network.from_arrays(arrays, "gate") if "gate.mean" in arrays else None
    neighbours = None
    if "knn.vectors" in arrays:
        try:
            neighbours = Neighbours(arrays["knn.vectors"], arrays["knn.gains"], int(meta["neighbours"]["k"]),
                                    float(meta["neighbours"]["scale"]))
        except KeyError as exc:
            raise ConfigError(f"router artifact {path}: neighbours without {exc}") from None
        if neighbours.vectors.shape[1] != int(meta["embedding"]["dims"]):
            raise ConfigError(f"router artifact {path}: neighbour vectors are not {meta['embedding']['dims']}-d")
    outcomes = None
    if "strong.mean" in arrays or "weak.mean" in arrays:
        outcomes = (Network.from_arrays(arrays, "strong"), Network.from_arrays(arrays, "weak"))
    text = None
    if "text.buckets" in arrays:
        if "text_model" not in meta:
            raise ConfigError(f"router artifact {path}: a text model without its metadata")
        text = TextModel.from_arrays(arrays, "text", meta["text_model"])
    artifact = RouterArtifact(prompt, meta, gate, arrays.get("trained_hashes", np.zeros(0, dtype=np.uint64)),
                              neighbours, outcomes, text)
    _check_ensemble(artifact, path)
    expected = artifact.embedding_dims + len(meta["features"]["text"])
    if prompt.inputs != expected:
        raise ConfigError(f"router artifact {path}: the prompt model reads {prompt.inputs} features, "
                          f"expected {expected}")
    return artifact


COMPONENTS = ("prompt", "outcomes", "knn", "knn_weighted", "text")


def _check_ensemble(artifact: RouterArtifact, path: str | os.PathLike) -> None:
    ensemble = artifact.meta.get("ensemble")
    if not isinstance(ensemble, dict):
        raise ConfigError(f"router artifact {path}: metadata lacks 'ensemble'")
    names = ensemble.get("components", [])
    unknown = [n for n in names if n not in COMPONENTS]
    if not names or unknown:
        raise ConfigError(f"router artifact {path}: ensemble components {names!r} (known: {list(COMPONENTS)})")
    if len(ensemble.get("mean", [])) != len(names) or len(ensemble.get("std", [])) != len(names):
        raise ConfigError(f"router artifact {path}: ensemble needs a mean and a std per component")
    needs = {"outcomes": artifact.outcome_models, "knn": artifact.neighbours, "knn_weighted": artifact.neighbours,
             "text": artifact.text_model}
    missing = [n for n in names if n in needs and needs[n] is None]
    if missing:
        raise ConfigError(f"router artifact {path}: ensemble component(s) {missing} have no arrays")
    for name in ("outcomes",):
        if name in names and any(m.inputs != artifact.prompt_model.inputs for m in artifact.outcome_models or ()):
            raise ConfigError(f"router artifact {path}: the outcome models read another number of features")


def band_edges(threshold: float) -> list[float]:
    """Tier bands around the operating point: simple/moderate split at `threshold`, the other
    two edges halfway to 0 and to 1."""
    return [threshold / 2.0, threshold, threshold + (1.0 - threshold) / 2.0]


def scores_to_tiers(scores: Sequence[float], bands: Sequence[float]) -> list[int]:
    """Band index (0 trivial .. 3 complex) for each score."""
    return [int(np.searchsorted(np.asarray(bands), s, side="right")) for s in scores]
