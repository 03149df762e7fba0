"""Encoding work per lookup: duplicates in a batch, the candidates' LRU, the query encoded once,
and the torch thread cap."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from costmesh.config import Env
from costmesh.embeddings import Embedder
from costmesh.errors import ConfigError
from costmesh.model_files import torch_threads
from costmesh.services.cache.encodings import EncodingLRU
from costmesh.services.cache.verifier import LearnedVerifier

from fake_models import FakeModel


async def test_a_text_asked_twice_in_one_batch_is_encoded_once():
    model = FakeModel()
    embedder = Embedder(model=model, window_ms=20, warmup=False)
    texts = ["a", "bb", "a", "ccc", "bb"]
    results = await asyncio.gather(*[embedder.embed([t]) for t in texts])
    assert model.calls == [["a", "bb", "ccc"]]
    for text, [vector] in zip(texts, results):
        assert vector == pytest.approx(model.encode([text])[0].tolist())
    assert embedder.texts_embedded == 3
    await embedder.aclose()


async def test_without_batching_each_call_is_its_own_pass_over_its_distinct_texts():
    model = FakeModel()
    embedder = Embedder(model=model, batching=False, warmup=False)
    first, second = await asyncio.gather(embedder.embed(["x", "yy", "x"]), embedder.embed(["x"]))
    assert sorted(model.calls) == [["x"], ["x", "yy"]]
    assert first[0] == first[2] == second[0] and first[1] != first[0]
    await embedder.aclose()


def test_lru_is_bounded_and_evicts_the_least_recently_used():
    lru = EncodingLRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the least recently used
    lru.put("c", 3)
    assert len(lru) == 2 and lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert (lru.hits, lru.misses) == (3, 1)
    off = EncodingLRU(0)
    off.put("a", 1)
    assert len(off) == 0 and off.get("a") is None
    with pytest.raises(ValueError):
        EncodingLRU(-1)


@dataclass
class Encoded:
    vector: np.ndarray
    tokens: np.ndarray


class CountingEmbedder:
    """`embed_full` that records what it was asked to encode."""

    def __init__(self):
        self.asked: list[list[str]] = []

    async def embed_full(self, texts):
        self.asked.append(list(texts))
        return [Encoded(np.full(4, len(t), np.float32), np.ones((2, 4), np.float32)) for t in texts]


class Ensemble:
    """Scores a row by its first value, counting calls."""

    def __init__(self):
        self.calls: list[int] = []

    def probability(self, x):
        self.calls.append(len(x))
        return np.asarray(x)[:, 0] / 10.0


class Artifact:
    min_similarity = 0.6
    interactions = False

    def __init__(self):
        self.ensemble = Ensemble()

    def pair_rows(self, query, candidates, encoded):
        from costmesh.verification.artifact import VerifierArtifact

        return VerifierArtifact.pair_rows(self, query, candidates, encoded)  # head None: features only

    def probability(self, rows):
        return self.ensemble.probability(rows)

    def veto(self, query, candidate):
        from costmesh.verification.lexical import veto

        return veto(query, candidate)

    def operating_point(self, bound):
        return type("Point", (), {"threshold": 0.5})()


async def test_verifier_reuses_the_query_encoding_and_caches_candidates():
    embedder = CountingEmbedder()
    verifier = LearnedVerifier(Artifact(), embedder, encoding_cache_size=2)
    query = (await embedder.embed_full(["the query"]))[0]
    embedder.asked.clear()

    encoded = await verifier.encode("the query", ["cand one", "cand two"], query)
    assert embedder.asked == [["cand one", "cand two"]]  # the query is not encoded again
    assert encoded[0] is query and [float(e.vector[0]) for e in encoded[1:]] == [8.0, 8.0]

    again = await verifier.encode("another query", ["cand two", "cand one"], query)
    assert embedder.asked == [["cand one", "cand two"]]  # both candidates came from the LRU
    assert again[1] is encoded[2] and again[2] is encoded[1]

    await verifier.encode("q", ["cand three", "cand three"], query)  # a duplicate is encoded once
    assert embedder.asked[-1] == ["cand three"] and len(verifier.encodings) == 2

    await verifier.encode("no encoding passed", ["cand three"])  # without one, the query is encoded too
    assert embedder.asked[-1] == ["no encoding passed"]


def test_torch_threads_default_to_one_and_reject_negatives():
    assert torch_threads(Env({})) == 1
    assert torch_threads(Env({"COSTMESH_TORCH_THREADS": "0"})) == 0
    with pytest.raises(ConfigError, match="COSTMESH_TORCH_THREADS"):
        torch_threads(Env({"COSTMESH_TORCH_THREADS": "-2"}))


class ThreadCountingModel(FakeModel):
    """Records torch's thread cap on the thread each forward pass runs on."""

    def __init__(self):
        super().__init__()
        self.threads: list[int] = []

    def encode(self, texts, **kwargs):
        import torch

        self.threads.append(torch.get_num_threads())
        return super().encode(texts, **kwargs)


async def test_embedder_caps_torch_threads_in_its_worker_too():
    import torch

    before = torch.get_num_threads()
    try:
        model = ThreadCountingModel()
        embedder = Embedder(model=model, warmup=False, threads=1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)  # the worker thread sets its own cap again
        await embedder.embed(["a text"])
        assert model.threads == [1]
        await embedder.aclose()
    finally:
        torch.set_num_threads(before)


def scorer_of(probability):
    """The verifier's row scorer (an inline MicroBatcher) over `probability`."""
    artifact = Artifact()
    artifact.probability = probability
    return LearnedVerifier(artifact, CountingEmbedder()).scorer


async def test_rows_of_concurrent_lookups_are_scored_in_one_call():
    ensemble = Ensemble()
    scorer = scorer_of(ensemble.probability)
    assert scorer.inline  # on the event loop, no thread, no window
    rows = [np.array([[float(i)], [float(i) + 0.5]]) for i in range(5)]
    scores = await asyncio.gather(*[scorer.submit(list(r)) for r in rows])
    assert ensemble.calls == [10] and (scorer.calls, scorer.items) == (1, 10)
    for r, got in zip(rows, scores):
        assert got == pytest.approx((r[:, 0] / 10).tolist())
    alone = await scorer.submit([np.array([3.0])])  # a lone lookup is scored on the next turn
    assert alone == [pytest.approx(0.3)] and ensemble.calls == [10, 1] and scorer.calls == 2
    await scorer.aclose()


async def test_a_failing_score_reaches_every_waiter_and_a_cancelled_one_is_skipped():
    def broken(x):
        raise RuntimeError("bad model")

    scorer = scorer_of(broken)
    results = await asyncio.gather(*[scorer.submit(list(np.ones((1, 1)))) for _ in range(3)], return_exceptions=True)
    assert [str(r) for r in results] == ["bad model"] * 3 and scorer.calls == 0

    ensemble = Ensemble()
    scorer = scorer_of(ensemble.probability)
    cancelled = asyncio.ensure_future(scorer.submit(list(np.ones((2, 1)))))
    kept = asyncio.ensure_future(scorer.submit(list(np.full((1, 1), 5.0))))
    await asyncio.sleep(0)  # both submitted
    cancelled.cancel()
    assert await kept == [0.5] and ensemble.calls == [1] and scorer.items == 1
    await scorer.aclose()


async def test_learned_verifier_scores_concurrent_lookups_together():
    embedder = CountingEmbedder()
    artifact = Artifact()
    verifier = LearnedVerifier(artifact, embedder)
    lookups = [("How do I reset my password?", [("How can I reset my password", 0.95), ("Reset a password", 0.9)]),
               ("Where is my parcel?", [("Where is my package?", 0.93)])]
    verdicts = await asyncio.gather(*[verifier.verify_many(q, c) for q, c in lookups])
    assert artifact.ensemble.calls == [3] and [len(v) for v in verdicts] == [2, 1]


class ScriptedEnsemble:
    """Returns the next scripted probability for each row."""

    def __init__(self, probabilities):
        self.left = list(probabilities)
        self.calls: list[int] = []

    def probability(self, x):
        self.calls.append(len(x))
        return np.asarray([self.left.pop(0) for _ in range(len(x))])


async def test_until_accepted_stops_scoring_at_the_first_accepted_candidate():
    candidates = [("first", 0.95), ("second", 0.93), ("third", 0.91)]
    artifact = Artifact()
    artifact.ensemble = ScriptedEnsemble([0.2, 0.9, 0.9])
    embedder = CountingEmbedder()
    verifier = LearnedVerifier(artifact, embedder)
    verdicts = await verifier.verify_many("query", candidates, until_accepted=True)
    assert [v.accepted for v in verdicts] == [False, True]  # the third is never judged
    assert artifact.ensemble.calls == [1, 1] and len(embedder.asked) == 1  # all encoded in one call

    artifact.ensemble = ScriptedEnsemble([0.2, 0.9, 0.9])
    verifier = LearnedVerifier(artifact, embedder)
    assert [v.accepted for v in await verifier.verify_many("query", candidates)] == [False, True, True]
    assert artifact.ensemble.calls == [3]


class CrossArtifact(Artifact):
    """An artifact with a cross-encoder whose logit alone decides (blend weight 1)."""

    cross_encoder = "adapter"  # not None: the verifier reads pairs with a cross-encoder
    cross_blend = 1.0

    def with_cross(self, probability, logits):
        from costmesh.verification.artifact import VerifierArtifact

        return VerifierArtifact.with_cross(self, probability, logits)


class TableCross:
    """A cross-encoder stand-in: the logit of a pair is looked up by the candidate's text."""

    def __init__(self, logits):
        self.table = logits
        self.calls: list[list[tuple[str, str]]] = []

    def logits(self, pairs):
        self.calls.append(list(pairs))
        return np.asarray([self.table[candidate] for _, candidate in pairs])


async def test_cross_encoder_reads_the_pairs_of_concurrent_lookups_together_and_decides():
    cross = TableCross({"Reset a password": -3.0, "How can I reset my password": 3.0, "Where is my package?": 2.0,
                        "Where is my invoice?": -1.0})
    verifier = LearnedVerifier(CrossArtifact(), CountingEmbedder(), cross_encoder=cross)
    lookups = [("How do I reset my password?", [("Reset a password", 0.95), ("How can I reset my password", 0.93)]),
               ("Where is my parcel?", [("Where is my invoice?", 0.91), ("Where is my package?", 0.9)])]
    verdicts = await asyncio.gather(*[verifier.verify_many(q, c, until_accepted=True) for q, c in lookups])
    assert [[v.accepted for v in vs] for vs in verdicts] == [[False, True], [False, True]]
    assert verdicts[0][1].score == pytest.approx(1 / (1 + np.exp(-3.0)))
    # one candidate of each lookup at a time, and both lookups' pairs in one pass
    assert [sorted(c for _, c in call) for call in cross.calls] == [
        ["Reset a password", "Where is my invoice?"], ["How can I reset my password", "Where is my package?"]]
    assert ("How do I reset my password?", "Reset a password") in cross.calls[0]
    await verifier.aclose()


async def test_a_vetoed_candidate_is_rejected_unscored_and_the_next_one_still_judged():
    cross = TableCross({"How can I sort the rows in ascending order?": 5.0,
                        "Sort the rows in descending order, please.": 5.0})
    verifier = LearnedVerifier(CrossArtifact(), CountingEmbedder(), cross_encoder=cross)
    query = "How do I sort the rows in descending order?"
    verdicts = await verifier.verify_many(query, [("How can I sort the rows in ascending order?", 0.97),
                                                  ("Sort the rows in descending order, please.", 0.95)],
                                          until_accepted=True)
    assert [v.accepted for v in verdicts] == [False, True]
    assert verdicts[0].reason == "veto opposite:ascending/descending" and verdicts[0].score == 0.0
    assert cross.calls == [[(query, "Sort the rows in descending order, please.")]]  # the vetoed pair is never read
    assert await verifier.verify_many(query, [("How can I sort the rows in ascending order?", 0.97)]) == [
        verdicts[0]]
    await verifier.aclose()


async def test_without_micro_batching_each_lookup_runs_its_own_cross_encoder_pass():
    cross = TableCross({"Where is my package?": 2.0, "How can I reset my password": 3.0})
    embedder = CountingEmbedder()
    embedder.batching = False  # COSTMESH_EMBED_BATCHING=false switches both models' batching off
    verifier = LearnedVerifier(CrossArtifact(), embedder, cross_encoder=cross)
    await asyncio.gather(verifier.verify_many("Where is my parcel?", [("Where is my package?", 0.9)]),
                         verifier.verify_many("How do I reset my password?", [("How can I reset my password", 0.9)]))
    assert sorted(len(call) for call in cross.calls) == [1, 1]
    await verifier.aclose()


async def test_prompts_longer_than_the_models_read_are_never_served_semantically():
    document = "Clause 1. The tenant pays rent monthly. " * 40  # 1,600 characters: past what the models read
    cross = TableCross({document + "Summarise clause 3.": 9.0, "Summarise clause 2 of the lease.": 9.0})
    embedder = CountingEmbedder()
    verifier = LearnedVerifier(CrossArtifact(), embedder, cross_encoder=cross)
    verdicts = await verifier.verify_many(document + "Summarise clause 2.", [(document + "Summarise clause 3.", 0.999)],
                                          until_accepted=True)
    assert [v.accepted for v in verdicts] == [False] and verdicts[0].reason.startswith("too long to verify")
    short = await verifier.verify_many("Summarise clause 2 of my lease.", [
        (document + "Summarise clause 3.", 0.97), ("Summarise clause 2 of the lease.", 0.95)], until_accepted=True)
    assert [v.accepted for v in short] == [False, True] and short[0].reason.startswith("veto too long")
    assert cross.calls == [[("Summarise clause 2 of my lease.", "Summarise clause 2 of the lease.")]]  # only it read
    assert embedder.asked == [["Summarise clause 2 of my lease.", "Summarise clause 2 of the lease."]]
    await verifier.aclose()


def test_lru_is_bounded_by_the_bytes_of_its_encodings_too():
    def encoding(tokens: int) -> Encoded:
        return Encoded(np.zeros(4, np.float32), np.zeros((tokens, 4), np.float32))  # 16 + 16 per token bytes

    lru = EncodingLRU(100, max_bytes=16 + 16 * 10 + 16 + 16 * 20)
    lru.put("ten", encoding(10))
    lru.put("twenty", encoding(20))
    assert len(lru) == 2 and lru.bytes == 16 * 2 + 16 * 30
    lru.put("five", encoding(5))  # over the byte bound: the least recently used goes
    assert lru.get("ten") is None and lru.get("twenty") is not None and lru.bytes == 16 * 2 + 16 * 25
    lru.put("twenty", encoding(1))  # replacing an entry counts its new size only
    assert lru.bytes == 16 * 2 + 16 * 6
    with pytest.raises(ValueError):
        EncodingLRU(1, max_bytes=-1)
