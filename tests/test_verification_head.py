"""The verifier's cross-attention head: it learns from token vectors, its numpy forward is the
one it was trained with, it round-trips in the artifact, and the packaged artifact carries it."""

from __future__ import annotations

import numpy as np
import pytest

from costmesh.verification.artifact import DEFAULT_ARTIFACT, OperatingPoint, VerifierArtifact, blended
from costmesh.verification.attention import AttentionHead, train_head
from costmesh.verification.encoder import Encoded
from costmesh.verification.features import FEATURE_NAMES
from costmesh.verification.token_cache import TokenCache
from costmesh.verification.trees import TreeEnsemble

DIMS = 16


def _trees() -> TreeEnsemble:
    """One leaf of value 0.5 over a baseline of -0.5: probability 0.5 for any row."""
    return TreeEnsemble.from_arrays({
        "tree_feature": np.zeros(1, np.int32), "tree_threshold": np.zeros(1), "tree_left": np.zeros(1, np.int32),
        "tree_right": np.zeros(1, np.int32), "tree_leaf": np.ones(1, bool), "tree_value": np.array([0.5]),
        "tree_missing_left": np.zeros(1, bool), "tree_roots": np.zeros(1, np.int32),
        "tree_baseline": np.array([-0.5])})


TABLE = (OperatingPoint(0.5, 0.08, 0.85, 0.70, 0.04, 0.80), OperatingPoint(0.9, 0.01, 0.97, 0.20, 0.00, 0.30))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n: int, seed: int) -> tuple[dict[str, Encoded], list[tuple[str, str, float, float]]]:
    """Duplicates: the same tokens reordered with a little noise; others: unrelated tokens."""
    rng = np.random.default_rng(seed)
    texts: dict[str, Encoded] = {}
    rows = []
    for i in range(n):
        tokens = _unit(rng.standard_normal((int(rng.integers(4, 9)), DIMS)))
        duplicate = i % 2 == 0
        other = (_unit(rng.permutation(tokens) + 0.1 * rng.standard_normal(tokens.shape)) if duplicate
                 else _unit(rng.standard_normal((int(rng.integers(4, 9)), DIMS))))
        a, b = f"{seed}-{i}-a", f"{seed}-{i}-b"
        texts[a] = Encoded(_unit(tokens.mean(axis=0)), tokens)
        texts[b] = Encoded(_unit(other.mean(axis=0)), other)
        rows.append((a, b, float(duplicate), 1.0))
    return texts, rows


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels > 0.5], scores[labels < 0.5]
    return float((pos[:, None] > neg[None, :]).mean())


@pytest.fixture(scope="module")
def trained() -> AttentionHead:
    texts, rows = _corpus(512, seed=1)
    return train_head(rows, texts.__getitem__, epochs=8, batch_size=32, dims=16, progress=False)


def test_the_head_learns_from_tokens_and_ranks_unseen_pairs(trained):
    texts, rows = _corpus(200, seed=2)
    logits = np.array([trained.logit(texts[a].tokens, texts[b].tokens, texts[a].vector, texts[b].vector)
                       for a, b, _, _ in rows])
    assert _auc(logits, np.array([r[2] for r in rows])) > 0.9


def test_the_head_is_symmetric_in_its_output(trained):
    texts, rows = _corpus(20, seed=3)
    for a, b, _, _ in rows:
        ea, eb = texts[a], texts[b]
        assert trained.logit(ea.tokens, eb.tokens, ea.vector, eb.vector) == pytest.approx(
            trained.logit(eb.tokens, ea.tokens, eb.vector, ea.vector), abs=1e-4)


def test_blend_weights_logits():
    assert blended(np.array([0.5]), np.array([0.0]), 0.7)[0] == pytest.approx(0.5)
    assert blended(np.array([0.9]), np.array([-5.0]), 1.0)[0] == pytest.approx(1 / (1 + np.exp(5.0)))
    assert blended(np.array([0.9]), np.array([-5.0]), 0.0)[0] == pytest.approx(0.9)


def test_artifact_with_a_head_round_trips_and_scores_rows(tmp_path, trained):
    artifact = VerifierArtifact(_trees(), FEATURE_NAMES, False, 0.6,
                                "all-MiniLM-L6-v2", TABLE, {}, head=trained, blend=0.7)
    loaded = VerifierArtifact.load(artifact.save(tmp_path / "v.npz"))
    assert loaded.head is not None and loaded.blend == 0.7
    texts, rows = _corpus(6, seed=4)
    encoded = [texts[rows[0][0]], *(texts[b] for _, b, _, _ in rows)]
    out = loaded.pair_rows("is it the same question", ["is it the same question?"] * len(rows), encoded)
    assert out.shape == (len(rows), len(FEATURE_NAMES) + 1)
    expected = [trained.logit(encoded[0].tokens, e.tokens, encoded[0].vector, e.vector) for e in encoded[1:]]
    assert out[:, -1] == pytest.approx(expected, abs=1e-5)
    assert loaded.probability(out) == pytest.approx(blended(np.full(len(rows), 0.5), np.array(expected), 0.7))
    without = VerifierArtifact.load(VerifierArtifact(_trees(), FEATURE_NAMES,
                                                     False, 0.6, "all-MiniLM-L6-v2", TABLE).save(tmp_path / "t.npz"))
    assert without.head is None and without.probability(np.zeros((1, len(FEATURE_NAMES)))) == pytest.approx([0.5])


def test_token_cache_round_trips_and_skips_cached_texts(tmp_path):
    class Model:  # counts what reaches the encoder; encode_full reads sentence-transformers output
        calls: list[list[str]] = []

        def encode(self, texts, **kwargs):
            import torch

            self.calls.append(list(texts))
            return [{"sentence_embedding": torch.ones(DIMS), "attention_mask": torch.ones(len(t.split()) + 2),
                     "token_embeddings": torch.arange((len(t.split()) + 2) * DIMS, dtype=torch.float32)
                     .reshape(-1, DIMS) + 1} for t in texts]

    cache = TokenCache(tmp_path / "tokens.npz")
    cache.fill(Model(), ["one two", "three four five", "one two"])
    assert sorted(Model.calls[0]) == ["one two", "three four five"]
    again = TokenCache(tmp_path / "tokens.npz")
    assert "three four five" in again and again.get("three four five").tokens.shape == (3, DIMS)
    again.fill(Model(), ["one two", "six"])
    assert Model.calls[-1] == ["six"]


