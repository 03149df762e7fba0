"""Scores prompts with a router artifact, and keeps the artifact current: `ArtifactSource`
re-reads the file when its modification time changes (reload without restart)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import structlog

from costmesh.errors import ConfigError

from .answer_checks import math_checks
from .artifact import RouterArtifact, load_artifact
from .features import feature_matrix

log = structlog.get_logger()


def component_scores(artifact: RouterArtifact, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """One column per ensemble component (in the artifact's order), unstandardised:
    `prompt` P(strong does better) from [embedding | text features]; `outcomes` P(strong right) -
    P(weak right); `knn` / `knn_weighted` the mean / similarity-weighted gain of the nearest
    training prompts; `text` the word model's predicted gain."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != artifact.embedding_dims:
        raise ValueError(
            f"embeddings of {artifact.embedding_dims} dimensions ({artifact.embedding_model}) are needed, "
            f"got shape {embeddings.shape}"
        )
    if embeddings.shape[0] != len(prompts):
        raise ValueError(f"need one embedding per prompt: {embeddings.shape[0]} for {len(prompts)} prompts")
    ensemble = artifact.meta["ensemble"]
    names = ensemble["components"]
    columns: dict[str, np.ndarray] = {}
    if "prompt" in names or "outcomes" in names:
        x = feature_matrix(prompts, embeddings)
        if "prompt" in names:
            columns["prompt"] = artifact.prompt_model.predict(x)
        if "outcomes" in names and artifact.outcome_models is not None:
            strong, weak = artifact.outcome_models
            columns["outcomes"] = strong.predict(x) - weak.predict(x)
    specs = {}
    if "knn" in names and artifact.neighbours is not None:
        specs["knn"] = (artifact.neighbours.k, 0.0)
    if "knn_weighted" in names and artifact.neighbours is not None:
        weighted = ensemble["knn_weighted"]
        specs["knn_weighted"] = (int(weighted["k"]), float(weighted["temperature"]))
    if specs:
        columns.update(zip(specs, artifact.neighbours.gains_of_nearest(embeddings, list(specs.values()))))
    if "text" in names and artifact.text_model is not None:
        columns["text"] = artifact.text_model.predict(prompts)
    return np.column_stack([columns[n] for n in names]).astype(np.float64)


def mix(artifact: RouterArtifact, components: np.ndarray) -> np.ndarray:
    """The mean of the standardised components (standardised with held-out rows' mean and std)."""
    ensemble = artifact.meta["ensemble"]
    mean = np.asarray(ensemble["mean"], dtype=np.float64)
    std = np.asarray(ensemble["std"], dtype=np.float64)
    return ((components - mean) / std).mean(axis=1)


def raw_prompt_scores(artifact: RouterArtifact, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """The uncalibrated ensemble score (higher: the strong model is more likely to do better)."""
    return mix(artifact, component_scores(artifact, prompts, embeddings))


def calibrate(artifact: RouterArtifact, raw: np.ndarray) -> np.ndarray:
    """Platt scaling fitted on held-out rows (monotone: it changes no ranking)."""
    platt = artifact.meta.get("calibration", {}).get("platt")
    if not platt:
        return np.asarray(raw, dtype=np.float64)
    a, b = platt
    return 1.0 / (1.0 + np.exp(-np.clip(a * np.asarray(raw, dtype=np.float64) + b, -40.0, 40.0)))


def prompt_scores(artifact: RouterArtifact, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """P(the cheap model is not good enough) for each prompt, from its embedding and text."""
    return calibrate(artifact, raw_prompt_scores(artifact, prompts, embeddings))


def gate_features(prompt: str, answer: str, prompt_score: float) -> list[float]:
    """The answer gate's inputs: the math checks of the answer and the prompt's score."""
    return [*math_checks(prompt, answer).features(), float(prompt_score)]


def gate_scores(artifact: RouterArtifact, rows: Sequence[tuple[str, str, float]]) -> np.ndarray:
    """P(the answer is not good enough) for (prompt, answer, prompt score) rows."""
    if artifact.gate_model is None:
        raise ConfigError("router artifact: it has no answer gate (train on a book with weak_response)")
    x = np.array([gate_features(p, a, s) for p, a, s in rows], dtype=np.float32).reshape(len(rows), -1)
    return artifact.gate_model.predict(x)


class ArtifactSource:
    """The artifact at `path`, re-read when the file changes (checked at most every `check_every_s`).

    A file that fails to load keeps the previous artifact in service (and is logged); with no
    previous one the error is raised.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        check_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_load: Callable[[RouterArtifact], None] | None = None,
    ):
        self.path = Path(path)
        self._check_every_s = check_every_s
        self._clock = clock
        self._on_load = on_load
        self._stamp: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self.loads = 0
        self._artifact = self._load()

    def _file_stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return (stat.st_mtime_ns, stat.st_size)

    def _load(self) -> RouterArtifact:
        stamp = self._file_stamp() if self.path.exists() else None
        artifact = load_artifact(self.path)
        self._stamp = stamp
        self.loads += 1
        if self._on_load is not None:
            self._on_load(artifact)
        return artifact

    def current(self) -> RouterArtifact:
        now = self._clock()
        if now - self._checked_at >= self._check_every_s:
            self._checked_at = now
            try:
                changed = self._file_stamp() != self._stamp
            except OSError:
                changed = False  # removed: keep serving the one we have
            if changed:
                try:
                    self._artifact = self._load()
                    log.info("router artifact reloaded", path=str(self.path),
                             version=self._artifact.meta.get("trained_at"))
                except ConfigError as exc:
                    log.error("router artifact reload failed; keeping the previous one", error=str(exc))
                    try:
                        self._stamp = self._file_stamp()  # not retried until the file changes again
                    except OSError:
                        pass
        return self._artifact
