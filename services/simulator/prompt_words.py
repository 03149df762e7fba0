"""What the simulated model reads out of a prompt: key words, numbers, names, an arithmetic expression.

Every function here makes one pass over the text with patterns that cannot backtrack (each
token pattern starts with a character class the others cannot continue), so a prompt of
megabytes costs linear time; every result is capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_KEYWORDS = 8
MAX_NUMBERS = 16
MAX_NUMBER_CHARS = 15  # longer digit runs (ids, hashes) are not quantities
MAX_NAMES = 4
MAX_NAME_WORDS = 4
PLACE_PREPOSITIONS = frozenset({"in", "at", "from", "to", "near", "for"})
MAX_EXPRESSION_CHARS = 200
STOPWORDS = frozenset(
    """
    a an and are as at be been but by can could did do does for from had has have he her his how i if in into
    is it its let me my of on or our she should so than that the their them then there these they this to
    use using was we were what when where which who whom why will with would you your please tell give find
    get show much many about some any all just also make may might must need want like answer question him now out one
    """.split()
)
# One token per match: a number (commas as thousands separators), a word, an operator, a paren,
# blanks, or any other single character. No alternative can extend another, so no backtracking.
_TOKEN = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|[A-Za-z][A-Za-z0-9_']*|[-+*/×÷^]|[()]|\s+|.", re.DOTALL)
_WORD_OPERATORS = {"plus": "+", "minus": "-", "times": "*", "x": "*", "multiplied": "*", "divided": "/"}
_SYMBOL_OPERATORS = {"+": "+", "-": "-", "*": "*", "/": "/", "×": "*", "÷": "/", "^": "**"}
_OPERATOR_PARTS = frozenset(_SYMBOL_OPERATORS.values())
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


@dataclass(frozen=True)
class PromptFacts:
    """The parts of a prompt a model would copy into tool arguments or JSON fields."""

    keywords: tuple[str, ...]  # content words in order, lower case, no repeats
    numbers: tuple[float, ...]
    names: tuple[str, ...]  # runs of capitalised words not opening a sentence (people, things)
    places: tuple[str, ...]  # such runs after "in", "at", "from", "to", "near"
    expression: str | None  # the longest arithmetic expression, in Python operators
    date: str | None  # the first YYYY-MM-DD date

    @property
    def query(self) -> str:
        """The prompt's key words as a search query."""
        return " ".join(self.keywords[:6]) or "general information"


def read_prompt(text: str) -> PromptFacts:
    """Key words, numbers, names, places and the arithmetic expression of `text`, in one pass."""
    keywords: list[str] = []
    seen: set[str] = set()
    numbers: list[float] = []
    names = _Names()
    expression = _Expressions()
    sentence_start = True
    for match in _TOKEN.finditer(text):
        token = match.group()
        expression.feed(token)
        first = token[0]
        if first.isdigit():
            if len(numbers) < MAX_NUMBERS and len(token) <= MAX_NUMBER_CHARS:
                numbers.append(float(token.replace(",", "")))
        elif first.isalpha():
            lower = token.lower()
            if len(keywords) < MAX_KEYWORDS and len(lower) > 2 and lower not in STOPWORDS and lower not in seen:
                seen.add(lower)
                keywords.append(lower)
        names.feed(token, sentence_start)
        if not token.isspace():
            sentence_start = first in ".!?\n"
        elif "\n" in token:
            sentence_start = True
    names.close()
    date = _DATE.search(text)
    return PromptFacts(
        keywords=tuple(keywords),
        numbers=tuple(numbers),
        names=tuple(names.names),
        places=tuple(names.places),
        expression=expression.best(),
        date=date.group() if date else None,
    )


class _Names:
    """Runs of capitalised words ("Ada Lovelace"; opening a sentence, only runs of two or more);
    after in/at/from/to/near/for, places."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.places: list[str] = []
        self._run: list[str] = []
        self._opens_sentence = False
        self._place = False
        self._previous = ""  # the last word, lower case, when only blanks follow it

    def feed(self, token: str, sentence_start: bool) -> None:
        if token.isspace():
            return
        if token[0].isupper() and token[0].isalpha():
            if not self._run:
                self._place = self._previous in PLACE_PREPOSITIONS
                self._opens_sentence = sentence_start
            if len(self._run) < MAX_NAME_WORDS:
                self._run.append(token)
            return
        self.close()
        self._previous = token.lower() if token[0].isalpha() else ""

    def close(self) -> None:
        if self._run and (len(self._run) > 1 or not self._opens_sentence):
            name = " ".join(self._run)
            found = self.places if self._place else self.names
            if len(found) < MAX_NAMES and name not in found:
                found.append(name)
        self._run = []
        self._previous = ""


def stems(text: str, limit: int = 256) -> frozenset[str]:
    """The content words of `text` cut to five letters (a crude stemmer: calculate ~ calculator)."""
    out: set[str] = set()
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not token[0].isalpha():
            continue
        for part in _split_identifier(token):
            if len(part) > 2 and part not in STOPWORDS:
                out.add(part[:5])
        if len(out) >= limit:
            break
    return frozenset(out)


def _split_identifier(token: str) -> list[str]:
    """`get_weather`, `getWeather`, `get-weather` -> ["get", "weather"] (lower case)."""
    parts, current = [], []
    for char in token:
        if char in "_-'" or (char.isupper() and current and current[-1].islower()):
            if current:
                parts.append("".join(current).lower())
            current = [] if char in "_-'" else [char]
        else:
            current.append(char)
    if current:
        parts.append("".join(current).lower())
    return parts


class _Expressions:
    """Finds, token by token, the run `number (operator number)+` with the most operators.

    Parentheses are kept when they balance within the run and dropped otherwise; "plus",
    "times", "x", "multiplied by", "divided by" count as operators.
    """

    def __init__(self) -> None:
        self._best: tuple[int, str] | None = None
        self._reset()

    def _reset(self) -> None:
        self._parts: list[str] = []
        self._expect_number = True
        self._pending_operator: str | None = None
        self._depth = 0
        self._balanced = True
        self._chars = 0

    def feed(self, token: str) -> None:
        if token.isspace():
            return
        lower = token.lower()
        if token[0].isdigit():
            if not self._expect_number or self._chars + len(token) + 4 > MAX_EXPRESSION_CHARS:
                self._close()  # a new run starts with this number
            self._take_operator()
            self._add(token.replace(",", ""))
            self._expect_number = False
        elif lower == "by" and self._pending_operator is not None:
            return  # "multiplied by", "divided by"
        elif (token in _SYMBOL_OPERATORS or lower in _WORD_OPERATORS) and not self._expect_number:
            self._pending_operator = _SYMBOL_OPERATORS.get(token) or _WORD_OPERATORS[lower]
            self._expect_number = True
        elif token == "(" and self._expect_number and self._chars + 8 < MAX_EXPRESSION_CHARS:
            self._take_operator()
            self._depth += 1
            self._add("(")
        elif token == ")" and not self._expect_number and self._depth > 0 and self._chars < MAX_EXPRESSION_CHARS:
            self._depth -= 1
            self._add(")")
        else:
            self._close()

    def _take_operator(self) -> None:
        if self._pending_operator is not None:
            self._add(self._pending_operator)
            self._pending_operator = None

    def _add(self, part: str) -> None:
        self._parts.append(part)
        self._chars += len(part) + 1

    def _close(self) -> None:
        parts = self._parts
        if self._depth or any(p in "()" for p in parts):
            parts = _balanced(parts)
        while parts and (parts[-1] in _OPERATOR_PARTS or parts[-1] == "("):
            parts = parts[:-1]
        operators = sum(1 for p in parts if p in _OPERATOR_PARTS)
        if operators and (self._best is None or operators > self._best[0]):
            self._best = (operators, " ".join(parts))
        self._reset()

    def best(self) -> str | None:
        self._close()
        return self._best[1] if self._best else None


def _balanced(parts: list[str]) -> list[str]:
    """`parts` with their parentheses if those pair up, else without any."""
    depth = 0
    for part in parts:
        depth += 1 if part == "(" else -1 if part == ")" else 0
    return parts if depth == 0 else [p for p in parts if p not in "()"]
