"""The simulator's judge mode: a shadow check's LLM judge prompt (`costmesh.judge_prompt`) is
answered SAME or DIFFERENT, deterministically, from how alike the two answers are.

Alike: the same numbers, and a Dice overlap of at least `SAME_AT` between their content words
(lower-cased words, a few function words left out). "Open Settings, choose Security, then Reset
password." and "Go to Settings > Security and pick Reset password." are the same (0.67); "The
store opens at 9 am on Mondays." and "The store is closed on Sundays." are not (a number only one has).
"""

from __future__ import annotations

import re

from costmesh.judge_prompt import DIFFERENT, SAME, read_judge_prompt

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


def judge_reply(prompt: str) -> str | None:
    """SAME or DIFFERENT for a judge prompt; None for any other prompt."""
    parsed = read_judge_prompt(prompt)
    if parsed is None:
        return None
    _question, served, fresh = parsed
    return SAME if alike(served, fresh) >= SAME_AT else DIFFERENT
