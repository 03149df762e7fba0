"""Batches split into forward passes of like length: the cheapest split, the same results."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from costmesh.embeddings import Embedder
from costmesh.length_chunks import DEFAULT_OVERHEAD_TOKENS, counted_part, plan_chunks, text_chunks, token_chunks
from costmesh.model_files import FP32_MODEL_ID
from costmesh.verification.encoder import encode_full

from fake_models import FakeModel


def _cost(lengths, chunks, overhead=DEFAULT_OVERHEAD_TOKENS):
    return sum(overhead + len(chunk) * max(lengths[i] for i in chunk) for chunk in chunks)


def _check_partition(lengths, chunks, max_chunk):
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    assert all(1 <= len(chunk) <= max_chunk for chunk in chunks)
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(flat)  # shortest first, no chunk overlapping another's lengths


def test_like_lengths_stay_in_one_pass_and_spread_ones_split():
    assert plan_chunks([12, 14, 13, 12, 15, 14, 13, 12]) == [[0, 3, 7, 2, 6, 1, 5, 4]]
    short_and_long = [8] * 16 + [70] * 16
    chunks = plan_chunks(short_and_long)
    assert [sorted(c) for c in chunks] == [list(range(16)), list(range(16, 32))]
    assert plan_chunks([]) == []


def test_the_split_is_the_cheapest_of_all_splits_of_the_sorted_order():
    rng = np.random.default_rng(7)
    for _ in range(40):
        lengths = [int(x) for x in rng.integers(4, 90, size=int(rng.integers(1, 9)))]
        max_chunk = int(rng.integers(1, 6))
        chunks = plan_chunks(lengths, max_chunk=max_chunk)
        _check_partition(lengths, chunks, max_chunk)
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        best = min(
            _cost(lengths, parts)
            for cuts in itertools.product([False, True], repeat=len(order) - 1)
            for parts in [_split(order, cuts)]
            if all(len(p) <= max_chunk for p in parts)
        )
        assert _cost(lengths, chunks) == pytest.approx(best)


def _split(order, cuts):
    parts, current = [], [order[0]]
    for index, cut in zip(order[1:], cuts):
        if cut:
            parts.append(current)
            current = []
        current.append(index)
    return parts + [current]


def test_a_pass_holds_at_most_max_chunk_rows():
    chunks = plan_chunks([10] * 70, max_chunk=32)
    _check_partition([10] * 70, chunks, 32)
    with pytest.raises(ValueError, match="max_chunk"):
        plan_chunks([1, 2], max_chunk=0)


def test_a_model_without_a_tokenizer_gets_one_pass():
    assert text_chunks(FakeModel(), ["a", "bb", "ccc"]) == [[0, 1, 2]]
    assert text_chunks(FakeModel(), []) == []


@pytest.fixture(scope="module")
def minilm():  # fp32: the int8 model reads one text a pass, so there is nothing for it to plan
    return Embedder(model_id=FP32_MODEL_ID, warmup=False, threads=1)


QUESTIONS = ["Why?", "How do I reset my password?", "What is the capital of France?",
             "What are the best ways to learn a new programming language quickly if I already know Python, "
             "JavaScript and a little bit of C, and which books or courses would you recommend for Rust?",
             "Is it safe?", "How can I improve my English speaking skills without a partner to practise with?"]


def test_split_passes_encode_exactly_as_one_text_at_a_time(minilm):
    model = minilm._model
    assert len(text_chunks(model, QUESTIONS)) > 1  # these lengths do split
    together = encode_full(model, QUESTIONS)
    for text, encoded in zip(QUESTIONS, together):
        [alone] = encode_full(model, [text])
        assert np.abs(encoded.vector - alone.vector).max() < 1e-5
        assert encoded.tokens.shape == alone.tokens.shape and np.abs(encoded.tokens - alone.tokens).max() < 1e-4
    for text, vector in zip(QUESTIONS, minilm.encode(QUESTIONS)):  # the vectors-only path too
        assert np.abs(np.asarray(vector) - np.asarray(minilm.encode([text])[0])).max() < 1e-5


def test_a_long_prompt_is_counted_from_its_start_only(minilm):
    long = "word " * 20_000  # 100,000 characters
    assert [len(t) for t in counted_part([long, "short"], 256)] == [2048, 5]
    # counted at the model's limit (256 tokens), so it gets a pass of its own
    assert text_chunks(minilm._model, [long, "How do I reset my password?"]) == [[1], [0]]


def test_a_model_that_reads_one_text_a_pass_is_not_tokenized_to_plan():
    class OnePerPass:
        per_pass, max_seq_length = 1, 256

        def tokenizer(self, *args, **kwargs):
            raise AssertionError("tokenized only to plan passes it does not batch")

    assert text_chunks(OnePerPass(), ["a", "bb", "ccc"]) == [[0], [1], [2]]
    assert token_chunks(OnePerPass().tokenizer, ["a", "bb"], ["c", "d"], limit=64, max_chunk=1) == [[0], [1]]
