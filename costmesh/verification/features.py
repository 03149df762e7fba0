"""One feature vector per (query, candidate) pair, symmetric in the two texts.

Embedding signals (cosine, token alignment: the worst-aligned token is what a negation or a
swapped entity leaves behind), lexical overlap, and mismatch counts of the things that change
an answer while barely moving a sentence vector: negation, opposite words, numbers, dates,
named entities, scope words, question words, and the order of shared words ("from Paris to
London" / "from London to Paris").
"""

from __future__ import annotations

import difflib
from collections import Counter

import numpy as np

from .encoder import Encoded
from .lexical import (
    DATE_WORDS,
    NEGATIONS,
    OPPOSITES,
    entities,
    flat_words,
    numbers,
    opposite_words,
    words,
)

STOPWORDS = frozenset("""
a an the of to in on at for from by with and or is are was were be been being do does did i me my
you your it its this that these those there here as if so than then into about can could should
would will shall may might must have has had what which who whom whose why how when where please
some any""".split())
SCOPE_WORDS = frozenset("""
all every each any some this that these those my your our their his her its mine yours ours theirs
everyone everybody everything entire whole only just single both none team company organization
organisation personal shared public private global local whole""".split())
QUESTION_WORDS = ("what", "why", "how", "when", "where", "who", "which", "whom", "whose")

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "align_f", "align_worst_low", "align_worst_high", "align_min", "align_low2",
    "word_jaccard", "content_jaccard", "content_only_max", "content_only_min", "content_only_sum",
    "len_min", "len_max", "len_diff", "char_ratio",
    "negation_mismatch", "negation_count_diff", "opposite",
    "number_diff", "has_numbers", "date_diff", "entity_diff", "entity_total",
    "scope_diff", "question_word_mismatch", "question_word_diff", "order_discordance",
)


FEATURES_VERSION = 2  # bump when a feature's meaning changes (cached rows are then recomputed)


def alignment(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, float]:
    """Greedy token alignment, symmetric in a and b: F, the lower and the higher of the two
    sides' worst-aligned token, the worst overall, the mean of the 2 worst."""
    sims = a @ b.T
    recall = sims.max(axis=1)      # each token of a to its best match in b
    precision = sims.max(axis=0)
    r, p = float(recall.mean()), float(precision.mean())
    f = 2 * r * p / (r + p) if r + p > 0 else 0.0
    worst = np.sort(np.concatenate([recall, precision]))
    low, high = sorted((float(recall.min()), float(precision.min())))
    return f, low, high, float(worst[0]), float(worst[:2].mean())


def _discordance(a_words: list[str], b_words: list[str]) -> float:
    """Share of discordant pairs among the content words both texts use once."""
    a_counts, b_counts = Counter(a_words), Counter(b_words)
    shared = [w for w in a_words if a_counts[w] == 1 and b_counts[w] == 1 and w not in STOPWORDS]
    if len(shared) < 2:
        return 0.0
    b_index = {w: i for i, w in enumerate(b_words)}  # each shared word occurs once in b
    b_pos = [b_index[w] for w in shared]
    pairs = discordant = 0
    for i in range(len(b_pos)):
        for j in range(i + 1, len(b_pos)):
            pairs += 1
            discordant += b_pos[i] > b_pos[j]
    return discordant / pairs


def lexical_features(a: str, b: str) -> list[float]:
    a_tok, b_tok = words(a), words(b)
    a_words, b_words = flat_words(a_tok), flat_words(b_tok)
    a_list = [t.replace("'", "") for t in a_tok]
    b_list = [t.replace("'", "") for t in b_tok]
    union = a_words | b_words
    a_content, b_content = a_words - STOPWORDS, b_words - STOPWORDS
    content_union = a_content | b_content
    only_a, only_b = len(a_content - b_content), len(b_content - a_content)

    def neg_count(tokens: list[str]) -> int:
        return sum(1 for t in tokens if t.replace("'", "") in NEGATIONS or t.endswith("n't"))

    na, nb = neg_count(a_tok), neg_count(b_tok)
    opposite = opposite_words(a_words, b_words, OPPOSITES) is not None
    num_a, num_b = numbers(a), numbers(b)
    number_diff = sum(((num_a - num_b) + (num_b - num_a)).values())
    date_diff = len((a_words & DATE_WORDS) ^ (b_words & DATE_WORDS))
    ent_a = {e.replace("'", "") for e in entities(a)}
    ent_b = {e.replace("'", "") for e in entities(b)}
    entity_diff = len(ent_a - b_words) + len(ent_b - a_words)
    scope_diff = len((a_words & SCOPE_WORDS) ^ (b_words & SCOPE_WORDS))
    qa = next((w for w in a_list if w in QUESTION_WORDS), "")
    qb = next((w for w in b_list if w in QUESTION_WORDS), "")
    q_diff = len(({w for w in a_list if w in QUESTION_WORDS}) ^ ({w for w in b_list if w in QUESTION_WORDS}))
    la, lb = len(a_tok), len(b_tok)
    return [
        len(a_words & b_words) / len(union) if union else 1.0,
        len(a_content & b_content) / len(content_union) if content_union else 1.0,
        float(max(only_a, only_b)), float(min(only_a, only_b)), float(only_a + only_b),
        float(min(la, lb)), float(max(la, lb)), float(abs(la - lb)),
        difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio(),
        float((na % 2) != (nb % 2)), float(abs(na - nb)), float(opposite),
        float(number_diff), float(bool(num_a or num_b)), float(date_diff),
        float(entity_diff), float(len(ent_a | ent_b)),
        float(scope_diff), float(qa != qb), float(q_diff), _discordance(a_list, b_list),
    ]


def pair_features(a: str, b: str, ea: Encoded, eb: Encoded) -> np.ndarray:
    """The feature vector of FEATURE_NAMES for texts a, b and their encodings."""
    cosine = float(np.dot(ea.vector, eb.vector))
    row = [cosine, *alignment(ea.tokens, eb.tokens), *lexical_features(a, b)]
    return np.asarray(row, dtype=np.float32)


def interaction_features(ea: Encoded, eb: Encoded) -> np.ndarray:
    """|u - v| and u * v of the sentence vectors (symmetric in a, b)."""
    return np.concatenate([np.abs(ea.vector - eb.vector), ea.vector * eb.vector]).astype(np.float32)
