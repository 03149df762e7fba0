"""The simulator's judge mode: a shadow check's LLM judge prompt (`costmesh.judge_prompt`) is
answered SAME or DIFFERENT, deterministically, from how alike the two answers are; a routing
check's (a cheap answer against the premium model's) GOOD or WORSE.

Alike: the same numbers, and a Dice overlap of at least `SAME_AT` between their content words
(lower-cased words, a few function words left out). "Open Settings, choose Security, then Reset
password." and "Go to Settings > Security and pick Reset password." are the same (0.67); "The
store opens at 9 am on Mondays." and "The store is closed on Sundays." are not (a number only one has).
"""

from __future__ import annotations

import re

from costmesh.judge_prompt import DIFFERENT, GOOD, SAME, WORSE, read_judge_prompt, read_quality_prompt
from costmesh.services.simulator.books import Books

SAME_AT = 0.6
_WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_FUNCTION_WORDS = frozenset(
    "a an the and or but to of in on at by for with from as is are was were be been it its this that "
    "then than so do does did you your i we they he she".split())


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS}


def alike(a: str, b: str) -> float:
    """Dice overlap of the two texts' content words (0 when their numbers differ)."""
    if set(_NUMBER.findall(a)) != set(_NUMBER.findall(b)):
        return 0.0
    left, right = _content(a), _content(b)
    if not left and not right:
        return 1.0
    return 2 * len(left & right) / (len(left) + len(right))


def judge_reply(prompt: str, books: Books | None = None) -> str | None:
    """SAME or DIFFERENT for a cache judge prompt, GOOD or WORSE for a routing judge prompt; None
    for any other prompt."""
    parsed = read_judge_prompt(prompt)
    if parsed is not None:
        _question, served, fresh = parsed
        return SAME if alike(served, fresh) >= SAME_AT else DIFFERENT
    quality = read_quality_prompt(prompt)
    if quality is not None:
        return GOOD if as_good(*quality, books) else WORSE
    return None


def as_good(question: str, candidate: str, reference: str, books: Books | None = None) -> bool:
    """Whether the candidate is as good as the reference. When the book holding the question recorded
    both answers with their scores, the scores decide (the weak model's answer to a question it got
    right is as good as the strong model's, worded otherwise; a wrong one is worse however many
    words it shares). Otherwise: whether it says the same (`alike`)."""
    entry = books.lookup(question) if books is not None else None
    if entry is not None:
        scores: dict[str, float] = {}
        for response, score in ((entry.weak_response, entry.weak_score), (entry.strong_response, entry.strong_score)):
            if response and isinstance(score, (int, float)):
                scores[response.strip()] = min(scores.get(response.strip(), 1.0), float(score))
        candidate_score, reference_score = scores.get(candidate.strip()), scores.get(reference.strip())
        if candidate_score is not None and reference_score is not None:
            return candidate_score >= reference_score
    return alike(candidate, reference) >= SAME_AT
