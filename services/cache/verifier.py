"""Verifiers decide whether a semantic candidate may be served for a query.

A plain cosine threshold serves "don't cancel my subscription" the answer cached for "cancel
my subscription" (MiniLM puts them at 0.97). `RuleVerifier` adds a similarity floor and rule
checks over the pair; `CosineVerifier` is the plain threshold (the baselines: redisvl's distance
0.1, GPTCache's similarity 0.8); `LearnedVerifier` scores the pair with the trained model of
`costmesh.verification` and accepts at the operating point picked for the operator's false-hit
bound. All three judge a query against its candidates through `verify_many`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from costmesh.batching import MicroBatcher
from costmesh.model_files import DEFAULT_BACKEND, cap_threads
from costmesh.verification.lexical import (
    OPPOSITES,
    dates,
    entity_mismatch,
    flat_words,
    negated,
    numbers,
    opposite_words,
    words,
)

from .encodings import DEFAULT_MAX_BYTES, EncodingLRU

# MiniLM cosine, measured: paraphrases 0.94-0.99 ("How do I reset my password?" / "How can I
# reset my password" 0.985); unrelated questions on the same topic < 0.75. Traps the rules
# catch sit at 0.93-0.97 (negation, today/tomorrow, Sunday/Monday, March 3/4). 0.90 keeps
# paraphrases and leaves the rules a narrow band to police; lower it and near-misses with
# different intent ("What is 2+2?" / "What is 2+3?" 0.89) reach the rules more often.
DEFAULT_MIN_SIMILARITY = 0.90
# The longest text the learned verifier judges. Its models read no further: the embedder stops
# at 256 tokens, the cross-encoder at 96 for the pair, and the trees were trained on questions of
# at most 1,173 characters (the longest in the Quora data). Two long prompts that differ only
# past that point (one document, another question at its end) would look the same to every
# part of it, and the lexical features' cost grows with length on the event loop. Longer
# prompts are served by the exact tier only.
MAX_VERIFIED_CHARS = 1200
TOO_LONG = f"too long to verify (> {MAX_VERIFIED_CHARS} characters)"
# The most feature rows the tree ensemble scores in one call: concurrent lookups' rows gathered
# in one loop turn (a lookup brings one row per candidate, a handful). The trees cost about the
# same for one row as for a hundred; the bound only keeps one call's arrays small.
ROWS_PER_SCORE = 1024


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""    # the failed check when rejected
    score: float = 1.0  # P(same answer) for the learned verifier; 1/0 for rules


class Verifier(Protocol):
    """Judges a query against cached prompts (with their cosine similarity to it)."""

    name: str
    min_similarity: float  # the KNN floor: candidates below it never reach the verifier
    # True when it reads token embeddings: the lookup then encodes its query in full once
    # and passes that encoding on (`query_encoding`), instead of the verifier encoding it again.
    needs_encoding: bool

    async def verify_many(self, query: str, candidates: Sequence[tuple[str, float]],
                          query_encoding: Any = None, until_accepted: bool = False,
                          threshold: float | None = None) -> list[Verdict]:
        """Verdicts in candidate order; with `until_accepted` the list may end at the first
        accepted candidate (those after it need not be judged). `threshold`: the tenant's, when
        its shadow checks moved it (only the learned verifier has one to move)."""


class CosineVerifier:
    """A plain similarity threshold: what GPTCache (0.8) and redisvl (distance 0.1) do."""

    needs_encoding = False

    def __init__(self, min_similarity: float):
        self.min_similarity = min_similarity
        self.name = f"cosine-{min_similarity:g}"

    def verify(self, query: str, candidate: str, similarity: float) -> Verdict:
        return Verdict(True) if similarity >= self.min_similarity else Verdict(False, "similarity", 0.0)

    async def verify_many(self, query: str, candidates: Sequence[tuple[str, float]],
                          query_encoding: Any = None, until_accepted: bool = False,
                          threshold: float | None = None) -> list[Verdict]:
        return [self.verify(query, text, sim) for text, sim in candidates]


class RuleVerifier:
    """v1: cosine floor plus negation, opposite-word, number, date and entity checks."""

    name = "rules-v1"
    needs_encoding = False

    def __init__(self, min_similarity: float = DEFAULT_MIN_SIMILARITY):
        self.min_similarity = min_similarity

    def verify(self, query: str, candidate: str, similarity: float) -> Verdict:
        if similarity < self.min_similarity:
            return Verdict(False, "similarity")
        q_tokens, c_tokens = words(query), words(candidate)
        q_words, c_words = flat_words(q_tokens), flat_words(c_tokens)
        if negated(q_tokens) != negated(c_tokens):
            return Verdict(False, "negation")
        flipped = opposite_words(q_words, c_words, OPPOSITES)
        if flipped:
            return Verdict(False, f"opposite:{flipped[0]}/{flipped[1]}")
        if numbers(query) != numbers(candidate):
            return Verdict(False, "numbers")
        if dates(q_words) != dates(c_words):
            return Verdict(False, "dates")
        if entity_mismatch(query, q_words, candidate, c_words):
            return Verdict(False, "entities")
        return Verdict(True)

    async def verify_many(self, query: str, candidates: Sequence[tuple[str, float]],
                          query_encoding: Any = None, until_accepted: bool = False,
                          threshold: float | None = None) -> list[Verdict]:
        return [self.verify(query, text, sim) for text, sim in candidates]


class LearnedVerifier:
    """The trained pair model (`costmesh.verification`) at the operator's false-hit bound.

    The features align token embeddings of the query and each candidate. The query's come from
    the lookup's own forward pass when it passes `query_encoding`; candidates' come from a
    bounded LRU (`encoding_cache_size` texts, `encoding_cache_bytes` of arrays), and those missing are encoded in one
    micro-batched forward pass. The model's probability is compared with the threshold the
    artifact's calibration table gives for `max_false_hit_rate`. The rows of concurrent lookups
    are scored in one call of the ensemble (`scorer`: a `MicroBatcher` run inline, since the
    trees cost about the same for one row as for a hundred). When the artifact carries a
    cross-encoder, each (query, candidate) pair is also read by it, micro-batched across
    concurrent lookups on its own worker thread, and its logit is blended in.
    """

    name = "learned-v1"
    needs_encoding = True

    def __init__(self, artifact: Any, embedder: Any, max_false_hit_rate: float = 0.05,
                 encoding_cache_size: int = 1024, cross_encoder: Any = None,
                 encoding_cache_bytes: int = DEFAULT_MAX_BYTES):
        """`cross_encoder`: anything with `logits(pairs)`; by default the artifact's adapter is
        merged into a private copy of the packaged MiniLM (when the artifact has one). It runs
        as the embedder does: on its backend (ONNX Runtime or torch), micro-batched or not, with
        the same thread cap."""
        self.artifact = artifact
        self.embedder = embedder
        self.encodings = EncodingLRU(encoding_cache_size, encoding_cache_bytes)
        self.scorer: MicroBatcher[np.ndarray, float] = MicroBatcher(
            lambda rows: artifact.probability(np.stack(rows)), inline=True, max_batch=ROWS_PER_SCORE, name="trees")
        self.cross: MicroBatcher[tuple[str, str], float] | None = None
        if getattr(artifact, "cross_encoder", None) is not None:
            threads = getattr(embedder, "threads", 0)  # COSTMESH_TORCH_THREADS, COSTMESH_EMBED_BATCHING
            backend = getattr(embedder, "backend", DEFAULT_BACKEND)
            if cross_encoder is None:
                from costmesh.verification.cross_encoder import load_cross_encoder

                cross_encoder = load_cross_encoder(artifact.cross_encoder, backend, threads or 1,
                                                   int8=getattr(artifact, "cross_int8", False))
            self.cross = MicroBatcher(cross_encoder.logits, max_batch=64, name="cross-encoder",
                                      batching=getattr(embedder, "batching", True),
                                      initializer=lambda: cap_threads(backend, threads))
            self.name = "learned-v1+cross-encoder"
        self.max_false_hit_rate = max_false_hit_rate
        self.point = artifact.operating_point(max_false_hit_rate)
        self.threshold = self.point.threshold
        self.min_similarity = artifact.min_similarity

    def features(self, query: str, candidates: Sequence[str], encoded: Sequence[Any]) -> np.ndarray:
        """One row of model inputs per candidate (`encoded`: the query's encoding first)."""
        return self.artifact.pair_rows(query, candidates, encoded)

    async def scores(self, query: str, candidates: Sequence[str], encoded: Sequence[Any]) -> np.ndarray:
        rows = list(self.features(query, candidates, encoded))
        if self.cross is None:
            return np.asarray(await self.scorer.submit(rows), dtype=np.float64)
        probability, logits = await asyncio.gather(self.scorer.submit(rows),
                                                   self.cross.submit([(query, text) for text in candidates]))
        return self.artifact.with_cross(np.asarray(probability, dtype=np.float64),
                                        np.asarray(logits, dtype=np.float64))

    async def aclose(self) -> None:
        await self.scorer.aclose()
        if self.cross is not None:
            await self.cross.aclose()

    async def encode(self, query: str, texts: Sequence[str], query_encoding: Any = None) -> list[Any]:
        """Encodings of the query then of each text: cached ones reused, the rest in one call."""
        known = {}
        for text in dict.fromkeys(texts):
            found = self.encodings.get(text)
            if found is not None:
                known[text] = found
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        ask = missing if query_encoding is not None else [query, *missing]
        if ask:
            fresh = await self.embedder.embed_full(ask)
            if query_encoding is None:
                query_encoding, fresh = fresh[0], fresh[1:]
            for text, encoding in zip(missing, fresh):
                known[text] = encoding
                self.encodings.put(text, encoding)
        return [query_encoding, *(known[text] for text in texts)]

    def _verdict(self, similarity: float, p: float, threshold: float | None = None) -> Verdict:
        threshold = self.threshold if threshold is None else threshold
        if similarity < self.min_similarity:
            return Verdict(False, "similarity", float(p))
        if p >= threshold:
            return Verdict(True, "", float(p))
        return Verdict(False, f"model p={p:.3f} < {threshold:.3f}", float(p))

    async def verify_many(self, query: str, candidates: Sequence[tuple[str, float]],
                          query_encoding: Any = None, until_accepted: bool = False,
                          threshold: float | None = None) -> list[Verdict]:
        """Verdicts in candidate order. A candidate the artifact vetoes (an opposite word, a
        swapped name) or longer than MAX_VERIFIED_CHARS is rejected without being scored (all of
        them, when the query is that long). `until_accepted`: score one candidate at
        a time and stop after the first accepted one (the cache serves that one; the rest would
        be wasted work; the cross-encoder's cost grows with the pairs it reads). `threshold`: the
        tenant's (shadow checks moved it) instead of the calibrated one."""
        if len(query) > MAX_VERIFIED_CHARS:
            return [Verdict(False, TOO_LONG, 0.0)] * len(candidates)
        vetoes = [TOO_LONG if len(text) > MAX_VERIFIED_CHARS
                  else self.artifact.veto(query, text) for text, _ in candidates]
        live = [c for c, reason in zip(candidates, vetoes) if reason is None]
        verdicts = iter(await self._judge(query, live, query_encoding, until_accepted, threshold) if live else [])
        out: list[Verdict] = []
        for reason in vetoes:  # the judged list ends only after an accepted one, where this stops too
            verdict = Verdict(False, f"veto {reason}", 0.0) if reason is not None else next(verdicts)
            out.append(verdict)
            if verdict.accepted and until_accepted:
                break
        return out

    async def _judge(self, query: str, candidates: Sequence[tuple[str, float]], query_encoding: Any,
                     until_accepted: bool, threshold: float | None = None) -> list[Verdict]:
        texts = [text for text, _ in candidates]
        encoded = await self.encode(query, texts, query_encoding)  # all at once: one forward pass at most
        if not until_accepted:
            scores = await self.scores(query, texts, encoded)
            return [self._verdict(sim, p, threshold) for (_, sim), p in zip(candidates, scores)]
        out: list[Verdict] = []
        for i, (text, sim) in enumerate(candidates):
            [p] = await self.scores(query, [text], [encoded[0], encoded[i + 1]])
            out.append(self._verdict(sim, p, threshold))
            if out[-1].accepted:
                break
        return out
