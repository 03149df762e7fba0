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


def raw_prompt_scores(artifact: RouterArtifact, prompts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """The uncalibrated mix: (P_logistic + mean neighbour gain + 1) / 3, or P_logistic alone."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != artifact.embedding_dims:
        raise ValueError(
            f"embeddings of {artifact.embedding_dims} dimensions ({artifact.embedding_model}) are needed, "
            f"got shape {embeddings.shape}"
        )
    p = artifact.prompt_model.predict(feature_matrix(prompts, embeddings))
    if artifact.neighbours is None:
        return p
    return (p + artifact.neighbours.mean_gain(embeddings) + 1.0) / 3.0


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
                    log.info("router artifact reloaded", path=str(self.path), version=self._artifact.meta.get("trained_at"))
                except ConfigError as exc:
                    log.error("router artifact reload failed; keeping the previous one", error=str(exc))
                    try:
                        self._stamp = self._file_stamp()  # not retried until the file changes again
                    except OSError:
                        pass
        return self._artifact
