"""`costmesh train-verifier`: train the cache verifier and write its artifact.

Reproducible: the Quora pairs are split by a hash of the pair (train / calibration / test
buckets), the trap frames by index (see `traps.py`), the models are seeded. Two models are
trained on the same pairs: gradient-boosted trees over the pair features, and a cross-encoder
(a LoRA adapter on the packaged MiniLM reading both questions together, `cross_encoder.py`).
The artifact blends their logits with the weight that gives the most calibration recall at the
false-hit bound. Pair features are cached under /tmp (keyed by the texts), so a re-run with
other settings skips the embedding; a trained cross-encoder can be reused with
`--cross-encoder-from` or trained further with `--cross-encoder-resume`.

    costmesh train-verifier                                  # trees + one cross-encoder epoch
    costmesh train-verifier --write-heldout /tmp/heldout     # + held-out pairs files to evaluate
    costmesh train-verifier --cross-encoder-resume FILE --cross-encoder-lr 3e-4 --cross-encoder-seed 1
                                                             # a second epoch; the packaged model has a third,
                                                             # resumed from that with lr 2e-4 and seed 2 (README)
    costmesh train-verifier --cross-encoder-from FILE        # refit the trees and recalibrate, same adapter
    costmesh train-verifier --from-records redis://HOST:6379 # + the labelled pairs of shadow checks

`--from-records` adds the pairs the cache kept from shadow checks (consenting tenants only; see
`shadow_pairs.py`) to the training rows of both models, weighted as traps are. They never join the
calibration sets: they are the hits some earlier threshold served, not a sample of the traffic.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from costmesh.errors import ConfigError
from costmesh.model_files import DEFAULT_MODEL_ID, FP32_MODEL_ID, INT8_MODEL_ID, SENTENCE_MODEL_IDS
from costmesh.services.cache.scope import normalise_query
from costmesh.tooling.datasets import Pair, data_dir, load_pairs
from costmesh.tooling.kept_lines import records_source
from costmesh.verification.artifact import (
    DEFAULT_ARTIFACT,
    OperatingPoint,
    VerifierArtifact,
    blended,
    pick_operating_point,
)
from costmesh.verification.cross_encoder import Adapter, CrossEncoder, OnnxCrossEncoder, train_cross_encoder
from costmesh.verification.encoder import Encoded, encode_full
from costmesh.verification.features import FEATURE_NAMES, FEATURES_VERSION, interaction_features, pair_features
from costmesh.verification.lexical import veto
from costmesh.verification.trees import TreeEnsemble

from .shadow_pairs import load_shadow_pairs
from .traps import generate, write_pairs

DEFAULT_CACHE = Path("/tmp/costmesh-verifier-features.npz")
DEFAULT_CROSS_CHECKPOINT = Path("/tmp/costmesh-cross-encoder.npz")
BUCKETS = {"train": range(0, 80), "calibration": range(80, 90), "test": range(90, 100)}


def bucket_of(pair: Pair) -> str:
    digest = int(hashlib.sha256(f"{pair.a}\n{pair.b}".encode()).hexdigest()[:8], 16) % 100
    return next(name for name, span in BUCKETS.items() if digest in span)


def pair_key(a: str, b: str) -> str:
    return hashlib.sha256(f"{a}\n{b}".encode()).hexdigest()[:24]


class FeatureCache:
    """Feature rows by pair key, persisted to one .npz under /tmp (one file per embedding model:
    `path` for the default MiniLM, `<stem>-<model id>.npz` for another)."""

    def __init__(self, path: Path | None, model_id: str = ""):
        if path and model_id and model_id != FP32_MODEL_ID:  # the file older runs wrote
            path = path.with_name(f"{path.stem}-{model_id}{path.suffix}")
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        if path and path.exists():
            with np.load(path, allow_pickle=False) as data:
                current = "version" in data.files and int(data["version"]) == FEATURES_VERSION
                if current and data["matrix"].shape[1:] == (len(FEATURE_NAMES) + 768,):
                    self.rows = dict(zip(data["keys"].tolist(), data["matrix"]))

    def save(self) -> None:
        if self.path and self.rows:
            keys = list(self.rows)
            np.savez(self.path, keys=np.asarray(keys), matrix=np.stack([self.rows[k] for k in keys]),
                     version=np.asarray(FEATURES_VERSION))


def featurise(encode: Callable[[list[str]], list[Encoded]], pairs: list[tuple[str, str]], cache: FeatureCache,
              label: str, chunk: int = 512, save_every: int = 16) -> np.ndarray:
    """Feature rows (base + interactions) of `pairs`, encoding only the texts of rows the cache lacks."""
    todo = [p for p in dict.fromkeys(pairs) if pair_key(*p) not in cache.rows]
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(todo), chunk)):
        part = todo[start:start + chunk]
        texts = list(dict.fromkeys(t for p in part for t in p))
        encoded = dict(zip(texts, encode(texts)))
        for a, b in part:
            ea, eb = encoded[a], encoded[b]
            cache.rows[pair_key(a, b)] = np.concatenate([pair_features(a, b, ea, eb), interaction_features(ea, eb)])
        done = start + len(part)
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r{label}: embedded {done}/{len(todo)} new pairs ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)
        if number % save_every == save_every - 1:  # the whole file is rewritten: not after every chunk
            cache.save()
    if todo:
        cache.save()
        print(file=sys.stderr)
    if not pairs:
        return np.zeros((0, len(FEATURE_NAMES) + 768))
    return np.stack([cache.rows[pair_key(a, b)] for a, b in pairs])


def columns(matrix: np.ndarray, interactions: bool) -> np.ndarray:
    return matrix if interactions else matrix[:, :len(FEATURE_NAMES)]


def hits_at(scores: np.ndarray, cosine: np.ndarray, exact: np.ndarray, threshold: float, floor: float) -> np.ndarray:
    """What the cache serves: an exact repeat, or a candidate over the floor the verifier accepts."""
    return exact | ((cosine >= floor) & (scores >= threshold))


def rates(hit: np.ndarray, duplicate: np.ndarray) -> tuple[float, float, float]:
    """(false-hit rate on non-duplicates, precision, recall)."""
    tp = int((hit & duplicate).sum())
    fp = int((hit & ~duplicate).sum())
    negatives = int((~duplicate).sum())
    positives = int(duplicate.sum())
    return (fp / negatives if negatives else 0.0, tp / (tp + fp) if tp + fp else 1.0,
            tp / positives if positives else 0.0)


def operating_table(quora: tuple, traps: tuple, floor: float, steps: int = 200) -> tuple[OperatingPoint, ...]:
    rows = []
    for threshold in np.linspace(0.0, 1.0, steps + 1):
        q_fhr, q_prec, q_rec = rates(hits_at(*quora[:3], threshold, floor), quora[3])
        t_fhr, _, t_rec = rates(hits_at(*traps[:3], threshold, floor), traps[3])
        rows.append(OperatingPoint(round(float(threshold), 4), round(q_fhr, 4), round(q_prec, 4), round(q_rec, 4),
                                   round(t_fhr, 4), round(t_rec, 4)))
    return tuple(rows)


def vetoed(scores: tuple, mask: np.ndarray) -> tuple:
    """The scores with the vetoed pairs' set to 0: the cache rejects those before scoring."""
    p = scores[0].copy()
    p[mask] = 0.0
    return (p, *scores[1:])


def recall_at(quora: tuple, traps: tuple, q_logits: np.ndarray, t_logits: np.ndarray, weight: float,
              args: argparse.Namespace, counts: dict[str, int], masks: tuple[np.ndarray, np.ndarray]) -> float:
    """Calibration Quora recall at the operating point the bound picks, for one blend weight,
    with the vetoes (`masks`) applied as the table and the cache apply them."""
    q = vetoed((blended(quora[0], q_logits, weight), *quora[1:]), masks[0])
    t = vetoed((blended(traps[0], t_logits, weight), *traps[1:]), masks[1])
    table = operating_table(q, t, args.min_similarity)
    return pick_operating_point(table, counts, args.max_false_hit_rate).quora_recall


def _exact(pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.asarray([normalise_query(a) == normalise_query(b) for a, b in pairs], dtype=bool)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", default=None, help="Quora-style pairs file (default: qqp_pairs_dev.jsonl.gz)")
    parser.add_argument("--train-pairs", type=int, default=48000,
                        help="Quora pairs to train on (of the train bucket; 48,000 is all of the dev file's)")
    parser.add_argument("--calibration-pairs", type=int, default=0,
                        help="Quora pairs of the calibration bucket for the table (0, the default: all of them; "
                             "more pairs tighten the 95%% bound the cache applies to the false-hit rate)")
    parser.add_argument("--trap-weight", type=float, default=24.0,
                        help="sample weight of generated trap pairs (960 of them against 48,000 Quora pairs)")
    parser.add_argument("--min-similarity", type=float, default=0.6, help="KNN floor stored in the artifact")
    parser.add_argument("--interactions", action=argparse.BooleanOptionalAction, default=True,
                        help="add |u-v| and u*v of the sentence vectors (768 features)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--max-false-hit-rate", type=float, default=0.05, help="bound to report the point for")
    parser.add_argument("--output", default=str(DEFAULT_ARTIFACT))
    parser.add_argument("--cross-encoder-epochs", type=float, default=1.0,
                        help="epochs of the LoRA cross-encoder over the packaged MiniLM (0: none; one epoch "
                             "over 48,000 pairs is about 35 minutes on 2 cores)")
    parser.add_argument("--cross-encoder-trap-repeats", type=int, default=8,
                        help="times each trap training pair is seen per cross-encoder epoch")
    parser.add_argument("--cross-encoder-from", default=None, metavar="FILE",
                        help="reuse the cross-encoder of this artifact (or training checkpoint) instead of training")
    parser.add_argument("--cross-encoder-resume", default=None, metavar="FILE",
                        help="continue training the cross-encoder of this artifact or checkpoint for "
                             "--cross-encoder-epochs more epochs")
    parser.add_argument("--cross-encoder-lr", type=float, default=5e-4, help="peak learning rate of the adapter")
    parser.add_argument("--cross-encoder-seed", type=int, default=0,
                        help="seed of the pair order (give a resumed epoch another one)")
    parser.add_argument("--cross-blend", type=float, default=None,
                        help="the cross-encoder's weight in the logit blend (default: the weight that gives "
                             "the most calibration recall at --max-false-hit-rate)")
    parser.add_argument("--vetoes", action=argparse.BooleanOptionalAction, default=True,
                        help="reject pairs with an opposite word, a swapped name or a one-vs-all scope switch "
                             "whatever the models say "
                             "(costmesh.verification.lexical.veto)")
    parser.add_argument("--embedding-model", default=DEFAULT_MODEL_ID, choices=SENTENCE_MODEL_IDS,
                        help=f"the MiniLM whose vectors the features read: fp32 or int8 (default {DEFAULT_MODEL_ID}); "
                             "the cache takes a verifier only with the embedder it names")
    parser.add_argument("--cross-encoder-int8", action=argparse.BooleanOptionalAction, default=None,
                        help="calibrate on the cross-encoder quantised to int8 (ONNX Runtime; about 2.2x less CPU "
                             "per pair), which the cache then runs (default: as the embedding model, int8 or not)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="feature cache file ('' to disable)")
    parser.add_argument("--from-records", nargs="?", const="$REDIS_URL", default=None, metavar="SOURCE",
                        help="also train on the labelled pairs of shadow checks: a Redis URL (default $REDIS_URL) "
                             "whose shadow-pairs lists the cache kept, or a JSON-lines file of them")
    parser.add_argument("--write-heldout", default=None, metavar="DIR",
                        help="also write the held-out test pairs (Quora bucket + trap frames) there")


def run(args: argparse.Namespace) -> int:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        raise ConfigError("train-verifier needs scikit-learn: pip install 'costmesh[dev]'") from None
    from costmesh.embeddings import load_sentence_model
    from costmesh.model_files import default_model_path

    started = time.perf_counter()
    path = args.pairs or data_dir() / "qqp_pairs_dev.jsonl.gz"
    split: dict[str, list[Pair]] = {name: [] for name in BUCKETS}
    for pair in load_pairs(path):
        split[bucket_of(pair)].append(pair)
    if args.write_heldout:
        out = Path(args.write_heldout)
        quora_test = [{"a": p.a, "b": p.b, "duplicate": p.duplicate} for p in split["test"]]
        write_pairs(quora_test, out / "quora_test.jsonl.gz")
        write_pairs(generate("test"), out / "traps_test.jsonl.gz")
        print(f"wrote held-out pairs to {out}/quora_test.jsonl.gz, traps_test.jsonl.gz", file=sys.stderr)
    quora_train = split["train"][: args.train_pairs]
    quora_cal = split["calibration"][: args.calibration_pairs or None]
    traps_train, traps_cal = generate("train"), generate("calibration")
    live = load_shadow_pairs(records_source(args.from_records)) if args.from_records else []
    if args.from_records:
        different = sum(not row["duplicate"] for row in live)
        print(f"shadow pairs: {len(live)} ({different} judged different)", file=sys.stderr)

    if args.cross_encoder_int8 is None:
        args.cross_encoder_int8 = args.embedding_model == INT8_MODEL_ID
    model = load_sentence_model(default_model_path(), "onnx", 1, args.embedding_model)
    cache = FeatureCache(Path(args.cache) if args.cache else None, args.embedding_model)
    to_pairs = lambda rows: [(r.a, r.b) if isinstance(r, Pair) else (r["a"], r["b"]) for r in rows]  # noqa: E731
    labels = lambda rows: np.asarray([r.duplicate if isinstance(r, Pair) else r["duplicate"] for r in rows])  # noqa: E731
    if args.cross_blend is not None and not 0.0 <= args.cross_blend <= 1.0:
        raise ConfigError(f"--cross-blend: must be in [0, 1], got {args.cross_blend}")
    if args.cross_encoder_from and args.cross_encoder_resume:
        raise ConfigError("--cross-encoder-from reuses a cross-encoder, --cross-encoder-resume trains one further: "
                          "give one of them")
    encode = lambda texts: encode_full(model, texts)  # noqa: E731
    x_q = featurise(encode, to_pairs(quora_train), cache, "quora train")
    x_t = featurise(encode, to_pairs(traps_train), cache, "traps train")
    x_l = featurise(encode, to_pairs(live), cache, "shadow pairs")
    c_q = featurise(encode, to_pairs(quora_cal), cache, "quora calibration")
    c_t = featurise(encode, to_pairs(traps_cal), cache, "traps calibration")

    x = columns(np.vstack([x_q, x_t, x_l]), args.interactions)
    y = np.concatenate([labels(quora_train), labels(traps_train), labels(live).astype(bool)])
    weights = np.concatenate([np.ones(len(x_q)), np.full(len(x_t) + len(x_l), args.trap_weight)])
    classifier = HistGradientBoostingClassifier(
        max_iter=args.iterations, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=20,
        l2_regularization=1.0, early_stopping=False, random_state=0)
    classifier.fit(x, y, sample_weight=weights)
    ensemble = TreeEnsemble.from_sklearn(classifier)

    cross = None
    if args.cross_encoder_from:
        cross = Adapter.load(Path(args.cross_encoder_from))
    elif args.cross_encoder_epochs > 0:
        rows = [(a, b, float(label)) for (a, b), label in zip(to_pairs(quora_train), labels(quora_train))]
        rows += [(a, b, float(label)) for (a, b), label in
                 zip(to_pairs(traps_train + live), labels(traps_train + live))] * args.cross_encoder_trap_repeats
        start = Adapter.load(Path(args.cross_encoder_resume)) if args.cross_encoder_resume else None
        cross = train_cross_encoder(rows, epochs=args.cross_encoder_epochs, lr=args.cross_encoder_lr,
                                    seed=args.cross_encoder_seed, checkpoint=DEFAULT_CROSS_CHECKPOINT, start=start)

    def scored(matrix, rows):
        pairs = to_pairs(rows)
        return ensemble.probability(columns(matrix, args.interactions)), matrix[:, 0], _exact(pairs), labels(rows)

    def veto_mask(rows) -> np.ndarray:  # the cache rejects these before scoring: so do the table and the blend
        return np.asarray([args.vetoes and veto(a, b) is not None for a, b in to_pairs(rows)], dtype=bool)

    masks = veto_mask(quora_cal), veto_mask(traps_cal)
    quora, traps = scored(c_q, quora_cal), scored(c_t, traps_cal)
    cross_blend = 0.0
    if cross is not None:
        reader = OnnxCrossEncoder(cross, int8=True) if args.cross_encoder_int8 else CrossEncoder(cross)
        q_logits, t_logits = reader.logits(to_pairs(quora_cal)), reader.logits(to_pairs(traps_cal))
        counts = {"quora": int((~quora[3]).sum()), "traps": int((~traps[3]).sum())}
        grid = [args.cross_blend] if args.cross_blend is not None else [w / 20 for w in range(21)]
        cross_blend = float(max(grid, key=lambda w: recall_at(quora, traps, q_logits, t_logits, w, args, counts,
                                                              masks)))
        quora = (blended(quora[0], q_logits, cross_blend), *quora[1:])
        traps = (blended(traps[0], t_logits, cross_blend), *traps[1:])
        print(f"cross-encoder blend weight {cross_blend:.2f}", file=sys.stderr)
    quora, traps = vetoed(quora, masks[0]), vetoed(traps, masks[1])
    table = operating_table(quora, traps, args.min_similarity)
    artifact = VerifierArtifact(
        ensemble=ensemble, feature_names=FEATURE_NAMES, interactions=args.interactions,
        min_similarity=args.min_similarity, embedding_model=args.embedding_model, table=table,
        cross_encoder=cross, cross_blend=cross_blend, vetoes=args.vetoes,
        cross_int8=cross is not None and args.cross_encoder_int8,
        meta={"trained_on": {"quora_pairs": len(quora_train), "trap_pairs": len(traps_train),
                             "quora_calibration": len(quora_cal), "trap_calibration": len(traps_cal),
                             "source": Path(path).name, "trap_weight": args.trap_weight,
                             "iterations": args.iterations,
                             "cross_encoder_epochs": args.cross_encoder_epochs if cross is not None else 0,
                             "cross_encoder_lr": args.cross_encoder_lr, "cross_encoder_seed": args.cross_encoder_seed,
                             "cross_encoder_resumed_from": args.cross_encoder_resume,
                             "cross_encoder_reused_from": args.cross_encoder_from,
                             "cross_encoder_trap_repeats": args.cross_encoder_trap_repeats,
                             "shadow_pairs": len(live)},
              "calibration_negatives": {"quora": int((~quora[3]).sum()), "traps": int((~traps[3]).sum())}},
    )
    saved = artifact.save(args.output)
    point = artifact.operating_point(args.max_false_hit_rate)
    print(f"wrote {saved} ({saved.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - started:.0f} s")
    print(f"operating point for false-hit rate <= {args.max_false_hit_rate}: threshold {point.threshold}; "
          f"calibration Quora precision {point.quora_precision:.3f} recall {point.quora_recall:.3f} "
          f"false-hit rate {point.quora_false_hit_rate:.3f}; traps false-hit rate {point.traps_false_hit_rate:.3f} "
          f"paraphrase recall {point.traps_recall:.3f}")
    return 0
