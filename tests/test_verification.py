"""The learned verifier's parts: features, the numpy tree ensemble, the artifact, traps."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from costmesh.errors import ConfigError
from costmesh.model_files import DEFAULT_MODEL_ID
from costmesh.tooling.datasets import Pair
from costmesh.tooling.verification.train import bucket_of, operating_table, rates, recall_at
from costmesh.tooling.verification.traps import FRAMES, generate
from costmesh.verification.artifact import DEFAULT_ARTIFACT, OperatingPoint, VerifierArtifact, blended
from costmesh.verification.cross_encoder import Adapter
from costmesh.verification.features import FEATURE_NAMES, alignment, lexical_features
from costmesh.verification.lexical import veto
from costmesh.verification.trees import TreeEnsemble

LEX = {name: i for i, name in enumerate(FEATURE_NAMES[6:])}


def lex(a: str, b: str, name: str) -> float:
    return lexical_features(a, b)[LEX[name]]


@pytest.mark.parametrize("a, b, name, expected", [
    ("Please cancel my subscription", "Please don't cancel my subscription", "negation_mismatch", 1.0),
    ("Please cancel my subscription", "Kindly cancel my subscription", "negation_mismatch", 0.0),
    ("Set an alarm for 7 am", "Set an alarm for 8 am", "number_diff", 2.0),
    ("Book it for Monday", "Book it for Tuesday", "date_diff", 2.0),
    ("Cancel my Netflix plan", "Cancel my Spotify plan", "entity_diff", 2.0),
    ("Delete this email", "Delete all emails", "scope_diff", 2.0),
    ("Why is the sky blue?", "How is the sky blue?", "question_word_mismatch", 1.0),
    ("Increase the font size", "Decrease the font size", "opposite", 1.0),
    ("Flights from Paris to London", "Flights from London to Paris", "order_discordance", 1 / 3),
    ("Flights from Paris to London", "Flights from Paris to London", "order_discordance", 0.0),
])
def test_lexical_signals(a, b, name, expected):
    assert lex(a, b, name) == pytest.approx(expected)
    assert lex(b, a, name) == pytest.approx(expected)  # symmetric


@pytest.mark.parametrize("a, b, reason", [
    ("Book a flight from Rome to Chicago", "Book a flight from Chicago to Rome", "swapped:chicago"),
    ("Convert 100 USD to EUR", "How do I convert 100 EUR to USD?", "swapped:eur"),
    ("Sort the table in ascending order", "Sort the table in descending order", "opposite:ascending/descending"),
    ("Turn on the lights", "Turn off the lights", "opposite:on/off"),
    ("Delete this email from Alice.", "Delete all emails from Alice.", "scope:email"),
    ("Refund this order", "Refund all of my orders", "scope:order"),
    ("How do I get to Paris from London?", "How to get from London to Paris?", None),  # same roles, reworded
    ("Which is better, Python or Java?", "Which is better, Java or Python?", None),  # no direction
    ("How do I find out if he likes me?", "How can I tell if he is in love with me?", None),  # a particle
    ("How do I reset my password?", "How can I reset my password", None),
])
def test_veto_catches_flips_no_paraphrase_makes(a, b, reason):
    assert veto(a, b) == reason and veto(b, a) == reason


def test_alignment_finds_the_token_without_a_match():
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((5, 8))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    f, low, high, worst, _ = alignment(tokens, tokens)
    assert f == pytest.approx(1.0) and worst == pytest.approx(1.0)
    odd = -tokens[:1]  # a token pointing away from all of them
    _, low, high, worst, _ = alignment(np.vstack([tokens, odd]), tokens)
    assert low < 0.9 and worst == low and high > low
    assert alignment(tokens, np.vstack([tokens, odd])) == pytest.approx(alignment(np.vstack([tokens, odd]), tokens))


def test_tree_ensemble_reproduces_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 5))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned side
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2 > 0.3).astype(int)
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core box only wait on each other
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    ensemble = TreeEnsemble.from_sklearn(model)
    assert np.allclose(ensemble.probability(x), model.predict_proba(x)[:, 1], atol=1e-9)
    again = TreeEnsemble.from_arrays(ensemble.to_arrays())
    assert np.allclose(again.decision(x), ensemble.decision(x))


def _table():
    return (
        OperatingPoint(0.2, 0.30, 0.70, 0.90, 0.40, 0.95),
        OperatingPoint(0.5, 0.08, 0.85, 0.70, 0.04, 0.80),
        OperatingPoint(0.7, 0.04, 0.92, 0.55, 0.02, 0.60),
        OperatingPoint(0.9, 0.01, 0.97, 0.20, 0.00, 0.30),
    )


def test_operating_point_is_the_most_reuse_within_the_bound_on_both_sets():
    artifact = VerifierArtifact(TreeEnsemble.from_arrays(_tiny_arrays()), FEATURE_NAMES, False, 0.6,
                                "all-MiniLM-L6-v2", _table())
    assert artifact.operating_point(0.05).threshold == 0.7   # 0.5 passes traps but not Quora
    assert artifact.operating_point(0.10).threshold == 0.5
    assert artifact.operating_point(0.5).threshold == 0.2
    assert artifact.operating_point(0.0).threshold == 0.9    # none within: the strictest
    with pytest.raises(ConfigError):
        artifact.operating_point(1.5)


def test_with_calibration_sizes_the_bound_holds_at_95_percent_confidence():
    from costmesh.verification.artifact import wilson_upper

    assert wilson_upper(0.0, 240) == pytest.approx(0.0111, abs=1e-3)
    assert wilson_upper(0.04, 1000) > 0.04 and wilson_upper(0.04, 0) == 0.04
    small = VerifierArtifact(TreeEnsemble.from_arrays(_tiny_arrays()), FEATURE_NAMES, False, 0.6,
                             "all-MiniLM-L6-v2", _table(), {"calibration_negatives": {"quora": 100, "traps": 100}})
    # 0.04 seen on 100 Quora negatives may well be 8%: 0.7 no longer passes at 5%
    assert small.operating_point(0.05).threshold == 0.9
    big = VerifierArtifact(TreeEnsemble.from_arrays(_tiny_arrays()), FEATURE_NAMES, False, 0.6,
                           "all-MiniLM-L6-v2", _table(), {"calibration_negatives": {"quora": 10**6, "traps": 10**6}})
    assert big.operating_point(0.05).threshold == 0.7


def _tiny_arrays():
    return {"tree_feature": np.zeros(1, np.int32), "tree_threshold": np.zeros(1), "tree_left": np.zeros(1, np.int32),
            "tree_right": np.zeros(1, np.int32), "tree_leaf": np.ones(1, bool), "tree_value": np.array([0.5]),
            "tree_missing_left": np.zeros(1, bool), "tree_roots": np.zeros(1, np.int32),
            "tree_baseline": np.array([-0.5])}


def test_artifact_round_trip(tmp_path):
    artifact = VerifierArtifact(TreeEnsemble.from_arrays(_tiny_arrays()), FEATURE_NAMES, False, 0.6,
                                "all-MiniLM-L6-v2", _table(), {"trained_on": {"quora_pairs": 3}})
    loaded = VerifierArtifact.load(artifact.save(tmp_path / "v.npz"))
    assert loaded.table == artifact.table and loaded.min_similarity == 0.6
    assert loaded.meta["trained_on"] == {"quora_pairs": 3}
    assert loaded.ensemble.probability(np.zeros((2, len(FEATURE_NAMES)))) == pytest.approx([0.5, 0.5])
    (tmp_path / "bad.npz").write_bytes(b"not an artifact")
    with pytest.raises(ConfigError):
        VerifierArtifact.load(tmp_path / "bad.npz")
    with np.load(tmp_path / "v.npz") as data:  # a format /2 artifact with the retired attention head
        np.savez(tmp_path / "head.npz", **{k: data[k] for k in data.files}, head_w=np.zeros(3))
    with pytest.raises(ConfigError, match="retrain"):
        VerifierArtifact.load(tmp_path / "head.npz")


def test_artifact_carries_the_cross_encoder_and_its_blend(tmp_path):
    adapter = Adapter(2, 4.0, 32, {"encoder.layer.0.attention.self.query": (np.ones((2, 384)), np.zeros((384, 2)))},
                      np.full(384, 0.5, np.float32), -1.0)
    artifact = VerifierArtifact(TreeEnsemble.from_arrays(_tiny_arrays()), FEATURE_NAMES, False, 0.6,
                                "all-MiniLM-L6-v2", _table(), cross_encoder=adapter, cross_blend=0.4)
    loaded = VerifierArtifact.load(artifact.save(tmp_path / "v.npz"))
    assert loaded.cross_blend == 0.4 and loaded.cross_encoder is not None
    assert loaded.cross_encoder.factors.keys() == adapter.factors.keys()
    assert loaded.cross_encoder.head_bias == -1.0 and loaded.cross_encoder.max_length == 32
    p, logits = np.array([0.9, 0.2]), np.array([-3.0, 3.0])
    assert loaded.with_cross(p, logits) == pytest.approx(blended(p, logits, 0.4))
    assert artifact.__class__(**{**artifact.__dict__, "cross_encoder": None}).with_cross(p, logits) == pytest.approx(p)


def test_the_packaged_artifact_loads_small_and_calibrated():
    artifact = VerifierArtifact.load()
    assert DEFAULT_ARTIFACT.stat().st_size < 3_000_000
    assert artifact.embedding_model == DEFAULT_MODEL_ID == "all-MiniLM-L6-v2-int8"
    assert artifact.feature_names == FEATURE_NAMES
    point = artifact.operating_point(0.05)
    assert point.false_hit_rate <= 0.05 and point.quora_recall > 0.2
    stricter = artifact.operating_point(0.01)
    assert stricter.threshold >= point.threshold and stricter.quora_recall <= point.quora_recall


def test_calibration_counts_exact_repeats_and_the_floor():
    scores = np.array([0.9, 0.9, 0.1, 0.9])
    cosine = np.array([0.95, 0.5, 0.99, 0.9])
    exact = np.array([False, False, True, False])
    duplicate = np.array([True, True, True, False])
    table = operating_table((scores, cosine, exact, duplicate), (scores, cosine, exact, duplicate), floor=0.6, steps=10)
    at_half = next(r for r in table if r.threshold == 0.5)
    # hits: pair 0 (verified), pair 2 (exact), pair 3 (a false hit); pair 1 is under the floor
    assert (at_half.quora_recall, at_half.quora_false_hit_rate) == (0.6667, 1.0)
    assert rates(np.array([True, False]), np.array([True, True])) == (0.0, 1.0, 0.5)


def test_traps_are_deterministic_and_held_out_frames_are_unseen():
    train, cal, test = generate("train"), generate("calibration"), generate("test")
    assert generate("test") == test
    frames = [{r["frame"] for r in split} for split in (train, cal, test)]
    assert not (frames[0] & frames[1] or frames[0] & frames[2] or frames[1] & frames[2])
    assert len(set().union(*frames)) == len(FRAMES)
    kinds = {r["kind"] for r in test}
    assert {"paraphrase", "negation", "entity", "number", "date", "scope"} <= kinds
    for row in test:
        assert row["a"] != row["b"] and row["duplicate"] == (row["kind"] == "paraphrase")


def test_quora_split_is_stable_by_pair():
    pair = Pair("What is AI?", "What's artificial intelligence?", True)
    assert bucket_of(pair) == bucket_of(Pair(pair.a, pair.b, False))
    buckets = {bucket_of(Pair(f"q{i}", "x", True)) for i in range(200)}
    assert buckets == {"train", "calibration", "test"}


def test_the_blend_weight_is_judged_with_the_vetoes_the_cache_applies():
    n = 200
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    scores = (np.r_[np.full(n, 0.9), np.full(n, 0.1)], np.ones(2 * n), np.zeros(2 * n, bool), labels)
    args = argparse.Namespace(min_similarity=0.6, max_false_hit_rate=0.05)
    logits, counts = np.zeros(2 * n), {"quora": n, "traps": n}
    none = (np.zeros(2 * n, bool), np.zeros(2 * n, bool))
    half_the_duplicates = (np.r_[np.arange(n) % 2 == 0, np.zeros(n, bool)], np.zeros(2 * n, bool))
    assert recall_at(scores, scores, logits, logits, 0.5, args, counts, none) == 1.0
    assert recall_at(scores, scores, logits, logits, 0.5, args, counts, half_the_duplicates) == 0.5
