"""Verifiers decide whether a semantic candidate may be served for a query.

A plain cosine threshold serves "don't cancel my subscription" the answer cached for "cancel
my subscription" (MiniLM puts them at 0.97). `RuleVerifier` (v1) adds a similarity floor and
rule checks over the pair; a learned verifier can replace it behind the same `Verifier` protocol.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

# MiniLM cosine, measured: paraphrases 0.94-0.99 ("How do I reset my password?" / "How can I
# reset my password" 0.985); unrelated questions on the same topic < 0.75. Traps the rules
# catch sit at 0.93-0.97 (negation, today/tomorrow, Sunday/Monday, March 3/4). 0.90 keeps
# paraphrases and leaves the rules a narrow band to police; lower it and near-misses with
# different intent ("What is 2+2?" / "What is 2+3?" 0.89) reach the rules more often.
DEFAULT_MIN_SIMILARITY = 0.90


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""  # the failed check when rejected


class Verifier(Protocol):
    """Judges a (query, cached prompt) pair at a given cosine similarity."""

    name: str

    def verify(self, query: str, candidate: str, similarity: float) -> Verdict: ...


_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
    "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint",
})
# Words whose presence on one side and their opposite on the other flips the request.
OPPOSITES = (
    ("cancel", "keep"), ("cancel", "continue"), ("cancel", "renew"), ("enable", "disable"),
    ("start", "stop"), ("add", "remove"), ("add", "delete"), ("create", "delete"), ("open", "close"),
    ("increase", "decrease"), ("buy", "sell"), ("allow", "block"), ("allow", "deny"),
    ("include", "exclude"), ("before", "after"), ("subscribe", "unsubscribe"), ("lock", "unlock"),
    ("accept", "reject"), ("upgrade", "downgrade"), ("min", "max"), ("minimum", "maximum"),
    ("more", "less"), ("most", "least"), ("up", "down"), ("on", "off"), ("in", "out"),
    ("true", "false"), ("yes", "no"),
)
NUMBER_WORDS = frozenset({
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
    "thousand", "million", "billion", "first", "second", "third", "half", "double", "twice",
})
DATE_WORDS = frozenset({
    "january", "february", "march", "april", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "today", "tonight", "tomorrow", "yesterday", "weekend", "morning",
    "afternoon", "evening", "night", "next", "last", "previous", "ago", "week", "month", "year",
    "quarter", "q1", "q2", "q3", "q4", "spring", "summer", "autumn", "winter",
})
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*%?")
_ENTITY = re.compile(r"\b(?:[A-Z][a-zA-Z0-9&'’-]*|[a-z]+[A-Z][A-Za-z0-9]*)\b")
NOT_ENTITIES = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok", "okay"}) | DATE_WORDS


def _tokens(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _flat(tokens: list[str]) -> set[str]:
    return {t.replace("'", "") for t in tokens}


def _negated(tokens: list[str]) -> bool:
    """Odd number of negations: "don't not cancel" reads as cancel."""
    count = sum(1 for t in tokens if t.replace("'", "") in NEGATIONS or t.endswith("n't"))
    return count % 2 == 1


def _numbers(text: str) -> Counter[str]:
    """Numbers with their multiplicity: "2+2" and "2+2+2" differ."""
    found = Counter(n.replace(",", "") for n in _NUMBER.findall(text))
    found.update(t for t in _flat(_tokens(text)) if t in NUMBER_WORDS)
    return found


def _dates(tokens: set[str]) -> set[str]:
    return tokens & DATE_WORDS


def _entities(text: str) -> set[str]:
    """Capitalised words that are not at a sentence start (names, places, products)."""
    out = set()
    for match in _ENTITY.finditer(text):
        word = match.group(0)
        before = text[max(0, match.start() - 40): match.start()].rstrip(" \t\"'(“‘*-")
        at_start = match.start() < 40 and not before or bool(before) and before[-1] in ".!?:\n"
        if (at_start and not word.isupper()) or word.lower() in NOT_ENTITIES:
            continue
        out.add(word.lower().replace("’", "'"))
    return out


def _entity_mismatch(a_text: str, a_words: set[str], b_text: str, b_words: set[str]) -> bool:
    """An entity named on one side must appear (in any case) on the other."""
    a_entities = {e.replace("'", "") for e in _entities(a_text)}
    b_entities = {e.replace("'", "") for e in _entities(b_text)}
    return bool((a_entities - b_words) or (b_entities - a_words))


class RuleVerifier:
    """v1: cosine floor plus negation, opposite-word, number, date and entity checks."""

    name = "rules-v1"

    def __init__(self, min_similarity: float = DEFAULT_MIN_SIMILARITY):
        self.min_similarity = min_similarity

    def verify(self, query: str, candidate: str, similarity: float) -> Verdict:
        if similarity < self.min_similarity:
            return Verdict(False, "similarity")
        q_tokens, c_tokens = _tokens(query), _tokens(candidate)
        q_words, c_words = _flat(q_tokens), _flat(c_tokens)
        if _negated(q_tokens) != _negated(c_tokens):
            return Verdict(False, "negation")
        for a, b in OPPOSITES:
            if (a in q_words and b in c_words and b not in q_words and a not in c_words) or (
                b in q_words and a in c_words and a not in q_words and b not in c_words
            ):
                return Verdict(False, f"opposite:{a}/{b}")
        if _numbers(query) != _numbers(candidate):
            return Verdict(False, "numbers")
        if _dates(q_words) != _dates(c_words):
            return Verdict(False, "dates")
        if _entity_mismatch(query, q_words, candidate, c_words):
            return Verdict(False, "entities")
        return Verdict(True)
