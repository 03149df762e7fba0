"""Lexical signals over a pair of texts: negation, opposite words, numbers, dates, entities.

Shared by the rule verifier (`services/cache/verifier.py`) and the learned verifier's features.
"""

from __future__ import annotations

import re
from collections import Counter

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


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def flat_words(tokens: list[str]) -> set[str]:
    return {t.replace("'", "") for t in tokens}


def negated(tokens: list[str]) -> bool:
    """Odd number of negations: "don't not cancel" reads as cancel."""
    count = sum(1 for t in tokens if t.replace("'", "") in NEGATIONS or t.endswith("n't"))
    return count % 2 == 1


def numbers(text: str) -> Counter[str]:
    """Numbers with their multiplicity: "2+2" and "2+2+2" differ."""
    found = Counter(n.replace(",", "") for n in _NUMBER.findall(text))
    found.update(t for t in flat_words(words(text)) if t in NUMBER_WORDS)
    return found


def dates(tokens: set[str]) -> set[str]:
    return tokens & DATE_WORDS


def entities(text: str) -> set[str]:
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


def entity_mismatch(a_text: str, a_words: set[str], b_text: str, b_words: set[str]) -> bool:
    """An entity named on one side must appear (in any case) on the other."""
    a_entities = {e.replace("'", "") for e in entities(a_text)}
    b_entities = {e.replace("'", "") for e in entities(b_text)}
    return bool((a_entities - b_words) or (b_entities - a_words))


# Flips the learned models meet too rarely in training to learn, and that no paraphrase makes:
# a word on one side whose opposite only the other side has, a name or number that moves
# across a directional word ("from Paris to London" / "from London to Paris", "USD to EUR" /
# "EUR to USD"), and one thing against all of them ("this email" / "all emails"). The cache
# rejects such a pair whatever the models say (`veto`).
MORE_OPPOSITES = (
    ("ascending", "descending"), ("asc", "desc"), ("import", "export"), ("upload", "download"),
    ("encrypt", "decrypt"), ("inbound", "outbound"), ("credit", "debit"), ("deposit", "withdraw"),
    ("oldest", "newest"), ("earliest", "latest"), ("largest", "smallest"), ("highest", "lowest"),
    ("maximize", "minimize"), ("install", "uninstall"), ("mute", "unmute"), ("follow", "unfollow"),
    ("encode", "decode"), ("compress", "decompress"), ("zip", "unzip"),
)
# "in" / "out" and "up" / "down" are particles more often than opposites ("find out", "break up")
VETO_OPPOSITES = tuple(p for p in OPPOSITES if p not in {("in", "out"), ("up", "down")}) + MORE_OPPOSITES
DIRECTIONAL = frozenset({"from", "to", "into"})


def opposite_words(a_words: set[str], b_words: set[str],
                   pairs: tuple[tuple[str, str], ...] = VETO_OPPOSITES) -> tuple[str, str] | None:
    """The first (x, y) with x only on one side and y only on the other, if any."""
    for x, y in pairs:
        if (x in a_words and y in b_words and y not in a_words and x not in b_words) or (
                y in a_words and x in b_words and x not in a_words and y not in b_words):
            return x, y
    return None


def _slot_roles(text: str, tokens: list[str]) -> dict[str, set[str]]:
    """For each name or number of `text` (`tokens`: its `words`), the directional words it
    stands just before or after."""
    slots = {e.replace("'", "") for e in entities(text)} | {n.replace(",", "") for n in _NUMBER.findall(text)}
    roles: dict[str, set[str]] = {}
    for i, token in enumerate(tokens):
        if token not in DIRECTIONAL:
            continue
        if i > 0 and tokens[i - 1] in slots:
            roles.setdefault(tokens[i - 1], set()).add(f"before-{token}")
        if i + 1 < len(tokens) and tokens[i + 1] in slots:
            roles.setdefault(tokens[i + 1], set()).add(f"after-{token}")
    return roles


def swapped_slot(a_text: str, a_tokens: list[str], b_text: str, b_tokens: list[str]) -> str | None:
    """A name or number before a directional word on one side and after the same word on the other."""
    a_roles, b_roles = _slot_roles(a_text, a_tokens), _slot_roles(b_text, b_tokens)
    for word in sorted(a_roles.keys() & b_roles.keys()):
        for direction in DIRECTIONAL:
            before, after = f"before-{direction}", f"after-{direction}"
            if (before in a_roles[word] and after in b_roles[word] and after not in a_roles[word]) or (
                    after in a_roles[word] and before in b_roles[word] and before not in a_roles[word]):
                return word
    return None


SINGLE = frozenset({"this", "that", "one"})
EVERY = frozenset({"all", "every", "each"})
_BETWEEN = frozenset({"my", "our", "your", "the", "of", "these", "those"})


def _quantified(tokens: list[str], quantifiers: frozenset[str]) -> set[str]:
    """Nouns a quantifier of the set governs: "all (of) (my) emails" gives "email" and "emails"."""
    out = set()
    for i, token in enumerate(tokens):
        if token not in quantifiers:
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] in _BETWEEN:
            j += 1
        if j < len(tokens):
            out |= {tokens[j], tokens[j].removesuffix("s")}
    return out


def scope_switch(a_tokens: list[str], b_tokens: list[str]) -> str | None:
    """One thing on one side, all of them on the other: "this email" / "all emails"."""
    for one, every in ((a_tokens, b_tokens), (b_tokens, a_tokens)):
        shared = _quantified(one, SINGLE) & _quantified(every, EVERY)
        if shared:
            return min(shared, key=len)
    return None


def veto(a_text: str, b_text: str) -> str | None:
    """Why the two texts cannot share an answer, whatever a model scores them; None if no flip."""
    a_tokens, b_tokens = words(a_text), words(b_text)
    found = opposite_words(flat_words(a_tokens), flat_words(b_tokens))
    if found:
        return f"opposite:{found[0]}/{found[1]}"
    moved = swapped_slot(a_text, a_tokens, b_text, b_tokens)
    if moved:
        return f"swapped:{moved}"
    switched = scope_switch(a_tokens, b_tokens)
    return f"scope:{switched}" if switched else None
