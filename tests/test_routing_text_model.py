"""The router's word model: hashed TF-IDF ridge regression; serving computes exactly the rows
training fitted on, and the arrays round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from costmesh.errors import ConfigError
from costmesh.routing.text_model import TextModel, bucket_counts, fit_text_model

HARD = ["integral", "eigenvalue", "tensor", "manifold", "lemma"]
EASY = ["apple", "river", "garden", "bread", "music"]


def _book(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, target = [], []
    for i in range(n):
        hard = i % 2 == 0
        words = list(rng.choice(HARD if hard else EASY, size=3)) + list(rng.choice(["the", "of", "which", "is"], 4))
        texts.append("Question: " + " ".join(words) + f" number {i}?")
        target.append(1.0 if hard else 0.0)
    return texts, np.array(target)


def test_buckets_count_unigrams_and_bigrams_case_insensitively():
    counts = bucket_counts("The cat, the CAT sat", bits=20)
    assert sum(counts.values()) == 5 + 4  # 5 words (2+ chars), 4 bigrams
    assert bucket_counts("the cat", 20) == bucket_counts("THE   Cat!", 20)
    assert all(0 <= b < 2**20 for b in counts)


def test_the_model_ranks_unseen_prompts_by_their_words():
    texts, target = _book(200)
    model = fit_text_model(texts, target, bits=16, alpha=1.0)
    new_texts, new_target = _book(100, seed=1)
    scores = model.predict(new_texts)
    assert scores[new_target == 1].min() > scores[new_target == 0].max()
    assert model.predict([""])[0] == pytest.approx(model.bias)  # no words: the intercept alone


def test_serving_rows_equal_the_rows_training_fitted_on():
    """The ridge's own predictions on its training matrix equal `predict` on the texts."""
    from scipy.sparse import csr_matrix

    texts, target = _book(120)
    target = target + np.random.default_rng(2).normal(0, 0.3, len(target))
    model = fit_text_model(texts, target, bits=14, alpha=3.0, min_df=2)
    rows = []
    for text in texts:
        vec = np.zeros(len(model.buckets))
        counts = bucket_counts(text, 14)
        values = {b: (1 + np.log(c)) * (model.idf[np.searchsorted(model.buckets, b)]
                                        if b in set(model.buckets.tolist()) else model.default_idf)
                  for b, c in counts.items()}
        norm = np.sqrt(sum(v * v for v in values.values()))
        for b, v in values.items():
            if b in set(model.buckets.tolist()):
                vec[np.searchsorted(model.buckets, b)] = v / norm
        rows.append(vec)
    expected = csr_matrix(np.array(rows)) @ model.weights.astype(np.float64) + model.bias
    assert np.allclose(model.predict(texts), expected, atol=1e-5)
    # Buckets seen once are dropped (min_df=2) but still count in the row's length.
    assert len(model.buckets) < len({b for t in texts for b in bucket_counts(t, 14)})


def test_arrays_round_trip_and_bad_arrays_are_refused():
    texts, target = _book(60)
    model = fit_text_model(texts, target, bits=16)
    loaded = TextModel.from_arrays(model.arrays("text"), "text", model.meta())
    assert np.allclose(loaded.predict(texts), model.predict(texts), atol=1e-3)  # idf stored as float16
    with pytest.raises(ConfigError, match="lacks"):
        TextModel.from_arrays({}, "text", model.meta())
    with pytest.raises(ConfigError, match="differ in length"):
        TextModel(16, model.buckets, model.idf[:-1], model.weights, 0.0, 1.0)
    with pytest.raises(ConfigError, match="sorted"):
        TextModel(16, model.buckets[::-1], model.idf, model.weights, 0.0, 1.0)
