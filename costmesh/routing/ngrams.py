"""The words of a prompt and their bigrams: the tokens both hashed prompt models count.

Words are runs of two or more word characters, lower-cased (`\\b\\w\\w+\\b`, scikit-learn's
default token pattern).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\b\w\w+\b")


def word_ngrams(text: str) -> list[str]:
    """The unigrams of `text`, then its bigrams ("a b"), in order."""
    words = _WORD.findall(text.lower())
    return [*words, *(a + " " + b for a, b in zip(words, words[1:]))]
