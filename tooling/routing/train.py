"""Training the learned router from routing books.

Rows are split by a stable hash of the prompt: `holdout` of them are never trained on. Half of
the held-out rows calibrate the operating point (and the answer gate's threshold), the other
half measure what that point gives; the router figures are reported on all held-out rows.

The prompt score is an ensemble of five views of the prompt, each standardised with its mean
and spread on the held-out calibration rows, then averaged:
- `prompt`: a logistic regression (or, with `hidden` > 0, a one-hidden-layer MLP) over
  [MiniLM embedding | text features] predicting P(the strong model does better than the weak
  one); fractional book scores become soft labels (sample weights);
- `outcomes`: two such regressions, P(strong right) - P(weak right) (the expected gain);
- `knn`, `knn_weighted`: the mean gain (strong - weak) of the `k` nearest training prompts,
  and the similarity-weighted mean over `k_weighted` of them;
- `text`: ridge regression of the gain on hashed TF-IDF word unigrams and bigrams.
Measured by 5-fold cross-validation on the MMLU book, the mix needs a lower premium share at
95% of strong quality than any one of them. The answer gate is a
logistic regression over the answer checks and the prompt score, trained on the training rows
that carry the weak model's answer, with out-of-fold prompt scores (so it does not learn to
trust an over-fitted prompt score).
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from costmesh.errors import InvalidRequest
from costmesh.model_files import DEFAULT_MODEL_ID
from costmesh.routing.answer_checks import FEATURE_NAMES as GATE_FEATURE_NAMES
from costmesh.routing.artifact import COMPONENTS, Neighbours, Network, RouterArtifact, band_edges, prompt_hash
from costmesh.routing.calibration import OperatingPoint, calibrated_threshold, expected_at
from costmesh.routing.embedding_cache import EncodeFn, embed_prompts
from costmesh.routing.features import TEXT_FEATURE_NAMES, feature_matrix
from costmesh.routing.scorer import calibrate, component_scores, gate_features, raw_prompt_scores
from costmesh.routing.text_model import fit_text_model
from costmesh.tooling.datasets import BookRecord

from .evaluation import evaluate

SPLIT_SCALE = float(2**64)


@dataclass(frozen=True)
class TrainConfig:
    holdout: float = 0.3
    point: OperatingPoint = field(default_factory=OperatingPoint)
    hidden: int = 0  # 0: logistic regression
    c: float = 0.02  # inverse L2 strength of the prompt model
    outcome_c: float = 0.003  # inverse L2 strength of the two outcome models
    k: int = 50  # neighbours of the plain mean (0: no neighbour components at all)
    k_weighted: int = 200  # neighbours of the similarity-weighted mean
    temperature: float = 0.1  # of the similarity weights exp(similarity / temperature)
    text_alpha: float = 3.0  # ridge strength of the word model
    text_bits: int = 18  # 2^bits hashed buckets
    components: tuple[str, ...] = COMPONENTS
    gate_c: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise InvalidRequest(f"components: {list(self.components)} (known: {list(COMPONENTS)})")
        if "prompt" not in self.components:
            raise InvalidRequest("components: 'prompt' is required")
        if self.k < 0 or self.k_weighted < 1:
            raise InvalidRequest("k: must be >= 0 (0: no neighbour components), k_weighted >= 1")


@dataclass
class Book:
    name: str
    records: list[BookRecord]
    sha256: str = ""
    train_only: bool = False  # never held out (e.g. the judged rows of shadow checks, a biased sample)

    @classmethod
    def read(cls, path: str | Path, limit: int | None = None) -> "Book":
        from costmesh.tooling.datasets import load_book

        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        return cls(path.name, load_book(path, limit), digest)


def is_held_out(prompt: str, holdout: float) -> bool:
    return prompt_hash(prompt) / SPLIT_SCALE < holdout


def is_calibration(prompt: str) -> bool:
    """Within the held-out rows: calibration (even hash) or measurement (odd)."""
    return prompt_hash(prompt) % 2 == 0


def _labels(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Soft label: how much better the strong model did, clipped to [0, 1]."""
    return np.clip(strong - weak, 0.0, 1.0)


def _fit(x: np.ndarray, soft: np.ndarray, *, hidden: int, c: float, seed: int) -> Network:
    """Fit on soft labels (each row twice, weighted soft and 1 - soft) and export the weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    xx = np.vstack([z, z])
    yy = np.concatenate([np.ones(len(z), dtype=int), np.zeros(len(z), dtype=int)])
    ww = np.concatenate([soft, 1.0 - soft])
    keep = ww > 0
    xx, yy, ww = xx[keep], yy[keep], ww[keep]
    if len(set(yy.tolist())) < 2:
        raise InvalidRequest("book: the strong model never beats the weak one (or always does): nothing to learn")
    if hidden <= 0:
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(xx, yy, sample_weight=ww)
        return Network(mean, scale, [model.coef_.T.astype(np.float32)], [model.intercept_.astype(np.float32)])
    # MLPClassifier has no sample weights in every version: resample by weight instead.
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(xx), size=len(xx), p=ww / ww.sum())
    model = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1.0 / max(c, 1e-6) * 1e-3, max_iter=300,
                          early_stopping=True, random_state=seed)
    model.fit(xx[picks], yy[picks])
    return Network(mean, scale, list(model.coefs_), list(model.intercepts_))


def _fit_scorer(x: np.ndarray, emb: np.ndarray, prompts: Sequence[str], weak: np.ndarray, strong: np.ndarray,
                config: TrainConfig) -> RouterArtifact:
    """The ensemble's components fitted on these rows, in an artifact with no calibration yet
    (`_standardise` on rows it was not fitted on completes it)."""
    network = _fit(x, _labels(weak, strong), hidden=config.hidden, c=config.c, seed=config.seed)
    names = [n for n in config.components if config.k > 0 or n not in ("knn", "knn_weighted")]
    outcomes = None
    if "outcomes" in names:
        if min(np.ptp(strong), np.ptp(weak)) > 0:
            outcomes = (_fit(x, strong, hidden=0, c=config.outcome_c, seed=config.seed),
                        _fit(x, weak, hidden=0, c=config.outcome_c, seed=config.seed))
        else:  # one model is always right (or always wrong) here: nothing to learn from its outcome
            names.remove("outcomes")
    neighbours = Neighbours.build(emb, strong - weak, config.k) if {"knn", "knn_weighted"} & set(names) else None
    text = fit_text_model(prompts, strong - weak, bits=config.text_bits, alpha=config.text_alpha) \
        if "text" in names else None
    meta = {"embedding": {"dims": emb.shape[1]}, "calibration": {},
            "ensemble": {"components": names, "mean": [0.0] * len(names), "std": [1.0] * len(names),
                         "knn_weighted": {"k": config.k_weighted, "temperature": config.temperature}}}
    return RouterArtifact(network, meta, neighbours=neighbours, outcome_models=outcomes, text_model=text)


def _standardise(artifact: RouterArtifact, prompts: Sequence[str], emb: np.ndarray) -> None:
    """Each component's mean and spread, on rows the artifact was not fitted on."""
    columns = component_scores(artifact, prompts, emb)
    std = columns.std(axis=0)
    std[std < 1e-9] = 1.0
    artifact.meta["ensemble"]["mean"] = columns.mean(axis=0).tolist()
    artifact.meta["ensemble"]["std"] = std.tolist()


def _out_of_fold(x, emb, prompts, weak, strong, config: TrainConfig, folds: int = 5) -> np.ndarray:
    """Raw prompt scores of each row from a model that did not see it (standardised on the fold itself)."""
    scores = np.zeros(len(x))
    order = np.arange(len(x)) % folds
    for fold in range(folds):
        test = order == fold
        if test.all() or not test.any():
            continue
        fold_model = _fit_scorer(x[~test], emb[~test], [p for p, t in zip(prompts, test) if not t],
                                 weak[~test], strong[~test], config)
        test_prompts = [p for p, t in zip(prompts, test) if t]
        _standardise(fold_model, test_prompts, emb[test])
        scores[test] = raw_prompt_scores(fold_model, test_prompts, emb[test])
    return scores


def _platt(raw: np.ndarray, soft: np.ndarray) -> list[float]:
    """a, b of sigmoid(a * raw + b) fitted to the soft labels (weighted logistic regression, 1-d)."""
    from sklearn.linear_model import LogisticRegression

    xx = np.concatenate([raw, raw]).reshape(-1, 1)
    yy = np.concatenate([np.ones(len(raw), dtype=int), np.zeros(len(raw), dtype=int)])
    ww = np.concatenate([soft, 1.0 - soft])
    keep = ww > 0
    if len(set(yy[keep].tolist())) < 2:
        return [1.0, 0.0]
    model = LogisticRegression(C=100.0, max_iter=1000).fit(xx[keep], yy[keep], sample_weight=ww[keep])
    return [float(model.coef_[0, 0]), float(model.intercept_[0])]


def train(
    books: Sequence[Book],
    *,
    config: TrainConfig = TrainConfig(),
    embedding_model: str = DEFAULT_MODEL_ID,
    encode: EncodeFn | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> tuple[RouterArtifact, dict]:
    """Train, calibrate and report. Returns the artifact and the held-out report."""
    if not 0.0 < config.holdout < 1.0:
        raise InvalidRequest(f"holdout: must be in (0, 1), got {config.holdout}")
    rows: list[tuple[int, BookRecord]] = []
    seen: set[int] = set()
    for index, book in enumerate(books):
        for record in book.records:
            h = prompt_hash(record.prompt)
            if h not in seen:
                seen.add(h)
                rows.append((index, record))
    if not rows:
        raise InvalidRequest("book: no rows to train on")
    records = [r for _, r in rows]
    prompts = [r.prompt for r in records]
    embeddings = embed_prompts(prompts, embedding_model, encode, use_cache=use_cache, progress=progress)
    x = feature_matrix(prompts, embeddings)
    weak = np.array([r.weak_score for r in records])
    strong = np.array([r.strong_score for r in records])
    soft = _labels(weak, strong)
    held = np.array([is_held_out(r.prompt, config.holdout) and not books[i].train_only for i, r in rows])
    train_rows = ~held
    calib = held & np.array([is_calibration(p) for p in prompts])
    measure = held & ~calib
    if train_rows.sum() < 10 or calib.sum() < 2 or measure.sum() < 2:
        raise InvalidRequest(f"book: too few rows to train, calibrate and measure ({len(prompts)})")

    train_prompts = [p for p, t in zip(prompts, train_rows) if t]
    artifact = _fit_scorer(x[train_rows], embeddings[train_rows], train_prompts, weak[train_rows],
                           strong[train_rows], config)
    _standardise(artifact, [p for p, c in zip(prompts, calib) if c], embeddings[calib])
    raw = raw_prompt_scores(artifact, prompts, embeddings)
    platt = _platt(raw[calib], soft[calib])
    ensemble = artifact.meta["ensemble"]
    artifact.meta = {"calibration": {"platt": platt}, "ensemble": ensemble}
    scores = calibrate(artifact, raw)
    threshold = calibrated_threshold(config.point, scores[calib], weak[calib], strong[calib], seed=config.seed)

    meta = {
        "embedding": {"model": embedding_model, "dims": int(embeddings.shape[1])},
        "features": {"text": list(TEXT_FEATURE_NAMES), "gate": [*GATE_FEATURE_NAMES, "prompt_score"]},
        "label": {"prompt": "soft label clip(strong - weak, 0, 1)", "outcomes": "strong score, weak score",
                  "knn": "strong - weak", "knn_weighted": "strong - weak", "text": "strong - weak"},
        "model": {
            "kind": "ensemble",
            "prompt": "logistic_regression" if config.hidden <= 0 else f"mlp_{config.hidden}",
            "c": config.c,
            "outcome_c": config.outcome_c,
            "neighbours_k": config.k,
            "text": {"bits": config.text_bits, "alpha": config.text_alpha, "min_df": 2},
            "score": "platt(mean over components of (component - mean) / std)",
        },
        "ensemble": ensemble,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": {
            "books": [{"name": b.name, "sha256": b.sha256, "rows": len(b.records),
                       **({"train_only": True} if b.train_only else {})} for b in books],
            "rows": len(records),
            "train_rows": int(train_rows.sum()),
            "held_out_rows": int(held.sum()),
            "split": f"sha256(normalised prompt)[:8] / 2^64 < {config.holdout}: held out; "
            "within it, even hash: calibration, odd: measurement",
            "holdout": config.holdout,
            "python": platform.python_version(),
        },
        "calibration": {
            "operating_point": asdict(config.point),
            "describe": config.point.describe(),
            "platt": platt,
            "threshold": threshold,
            "bands": band_edges(threshold),
            "calibrated_on_rows": int(calib.sum()),
            "expected": expected_at(threshold, scores[measure], weak[measure], strong[measure]).as_dict(),
        },
    }
    artifact.meta = meta
    artifact.trained_hashes = np.array([prompt_hash(p) for p in train_prompts], dtype=np.uint64)

    answered = np.array([r.weak_response is not None for r in records])
    gate_rows = train_rows & answered
    if gate_rows.sum() >= 20:
        # Out-of-fold prompt scores over all training rows (the neighbours need them all), calibrated.
        oof_all = calibrate(artifact, _out_of_fold(x[train_rows], embeddings[train_rows], train_prompts,
                                                   weak[train_rows], strong[train_rows], config))
        oof = oof_all[gate_rows[train_rows]]
        gx = np.array([gate_features(records[i].prompt, records[i].weak_response or "", s)
                       for i, s in zip(np.nonzero(gate_rows)[0], oof)], dtype=np.float32)
        gate_model = _fit(gx, soft[gate_rows], hidden=0, c=config.gate_c, seed=config.seed)
        artifact.gate_model = gate_model
        gcal = calib & answered
        gmeasure = measure & answered
        if gcal.sum() >= 4:
            def gate_probs(mask: np.ndarray) -> np.ndarray:
                feats = [gate_features(records[i].prompt, records[i].weak_response or "", scores[i])
                         for i in np.nonzero(mask)[0]]
                return gate_model.predict(np.array(feats, dtype=np.float32))

            # The threshold is chosen on the calibration rows plus out-of-fold gate scores of the
            # training rows (a few hundred rows more: the held-out half alone is small).
            oof_gate = np.zeros(len(gx))
            fold = np.arange(len(gx)) % 5
            for f in range(5):
                part = _fit(gx[fold != f], soft[gate_rows][fold != f], hidden=0, c=config.gate_c, seed=config.seed)
                oof_gate[fold == f] = part.predict(gx[fold == f])
            cal_probs = np.concatenate([oof_gate, gate_probs(gcal)])
            cal_weak = np.concatenate([weak[gate_rows], weak[gcal]])
            cal_strong = np.concatenate([strong[gate_rows], strong[gcal]])
            gate_threshold = calibrated_threshold(config.point, cal_probs, cal_weak, cal_strong, seed=config.seed)
            gate_meta = {"threshold": gate_threshold, "trained_on_rows": int(gate_rows.sum()),
                         "calibrated_on_rows": int(gcal.sum() + gate_rows.sum()),
                         "calibration": "held-out calibration rows + out-of-fold scores of the training rows"}
            if gmeasure.sum():
                gate_meta["expected_escalation"] = expected_at(
                    gate_threshold, gate_probs(gmeasure), weak[gmeasure], strong[gmeasure]).as_dict()
            meta["gate"] = gate_meta
        else:
            artifact.gate_model = None

    report = {"operating_point": meta["calibration"], "gate": meta.get("gate"), "held_out": {}}
    for index, book in enumerate(books):
        mask = held & np.array([i == index for i, _ in rows])
        if mask.sum() < 4:
            continue
        subset = [records[i] for i in np.nonzero(mask)[0]]
        report["held_out"][book.name] = {
            "routing": evaluate(subset, strategy="learned", cascade=False, artifact=artifact,
                                embeddings=embeddings[mask]),
        }
        if all(r.weak_response is not None for r in subset) and artifact.gate_model is not None \
                and "gate" in meta:
            report["held_out"][book.name]["cascade"] = evaluate(
                subset, strategy="learned", cascade=True, artifact=artifact, embeddings=embeddings[mask])
    meta["training"]["held_out_report"] = report["held_out"]
    return artifact, report
