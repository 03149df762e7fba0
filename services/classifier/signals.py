"""The signals the rules strategy reads from a conversation, each a named, weighted test.

Positive weights push towards a stronger model, negative ones (trivial cues) towards a
cheaper one. Every rule looks at `Features` only, so the table is easy to read and to tune.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from costmesh.domain import Message, Role
from costmesh.tokens import count_tokens

# Length thresholds in tokens of the last user message, and of the surrounding context.
SHORT_PROMPT = 8
LONG_PROMPT = 200
VERY_LONG_PROMPT = 800
LONG_CONTEXT = 2000
LONG_CONVERSATION = 6

SCAN_CHARS = 8_000  # cues are read in the first and last half of this (a long prompt asks at either end)
CHARS_PER_TOKEN = 6  # a prefix of this many characters per token still wanted holds that many tokens
SURELY_LONG = 8  # a text with this many characters per token of the cap is taken as over the cap uncounted


def count_up_to(texts: Iterable[str], cap: int) -> int:
    """Tokens in `texts`, exact below `cap`; counting stops once `cap` is reached (bounded time)."""
    total = 0
    for text in texts:
        left = cap - total
        if left <= 0:
            break
        if len(text) >= left * SURELY_LONG:
            return cap
        prefix = text[: left * CHARS_PER_TOKEN]
        found = count_tokens(prefix)
        if found < left and len(prefix) < len(text):
            found = count_tokens(text)  # unusually long tokens: the prefix was not enough
        total += found
    return total


def _scanned(text: str) -> str:
    if len(text) <= SCAN_CHARS:
        return text
    half = SCAN_CHARS // 2
    return text[:half] + "\n" + text[-half:]


_WORD = re.compile(r"[a-z0-9+#']+")


@dataclass(frozen=True)
class Features:
    """What the rules see: the last user message, with the rest of the conversation as context."""

    text: str  # the last user message (its two ends when longer than SCAN_CHARS)
    lower: str
    words: tuple[str, ...]  # lower-case words of `text`
    vocab: frozenset[str]
    tokens: int  # of the last user message, exact below VERY_LONG_PROMPT
    context_tokens: int  # system prompt + the other turns, exact below LONG_CONTEXT
    turns: int

    @classmethod
    def of(cls, messages: Sequence[Message]) -> "Features":
        last_user = max((i for i, m in enumerate(messages) if m.role == Role.USER), default=-1)
        full = messages[last_user].text if last_user >= 0 else ""
        context = [m.text for i, m in enumerate(messages) if i != last_user]
        text = _scanned(full)
        lower = text.lower()
        words = tuple(_WORD.findall(lower))
        return cls(
            text=text,
            lower=lower,
            words=words,
            vocab=frozenset(words),
            tokens=count_up_to([full], VERY_LONG_PROMPT),
            context_tokens=count_up_to(context, LONG_CONTEXT),
            turns=sum(1 for m in messages if m.role != Role.SYSTEM),
        )


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    fires: Callable[[Features], bool]


def _vocab(words: str, stems: str = "", phrases: tuple[str, ...] = ()) -> Callable[[Features], bool]:
    """Fires on any of the `words`, a word starting with one of the `stems`, or one of the `phrases`."""
    wordset = frozenset(words.split())
    stem_tuple = tuple(stems.split())

    def fires(f: Features) -> bool:
        if not wordset.isdisjoint(f.vocab):
            return True
        if stem_tuple and any(word.startswith(stem_tuple) for word in f.vocab):
            return True
        return any(phrase in f.lower for phrase in phrases)

    return fires


def _opening(pattern: str, max_words: int) -> Callable[[Features], bool]:
    """Fires on a short prompt that opens with `pattern`."""
    compiled = re.compile(r"^\W*(?:" + pattern + r")\b")
    return lambda f: len(f.words) <= max_words and compiled.search(f.lower) is not None


def _at_least(n: int, pattern: re.Pattern[str]) -> Callable[[Features], bool]:
    def fires(f: Features) -> bool:
        found = 0
        for _ in pattern.finditer(f.text):
            found += 1
            if found >= n:
                return True
        return False

    return fires


def _guarded(*checks: tuple[str, str], flags: int = 0) -> Callable[[str], bool]:
    """Regex checks, each run only when its guard (a plain substring) is in the text: fast on prose."""
    compiled = tuple((guard, re.compile(pattern, flags)) for guard, pattern in checks)
    return lambda text: any(guard in text and pattern.search(text) for guard, pattern in compiled)


_code_syntax = _guarded(
    ("```", "```"),
    ("=>", "=>"),
    ("(", r"\b(?:function|def)\s+\w+\s*\(|\w\(\w*(?:, ?\w+)*\)\s*[:{]"),
    ("{", r"\{[ \t]*$"),
    (";", r";[ \t]*$"),
    ("SELECT", r"\bSELECT\b[^;]*\bFROM\b"),
    ("\n", r"^[ \t]*(?:def|class|import|from [\w.]+ import|#include|fn|func|package|public|private|static)\b"),
    flags=re.MULTILINE,
)
_equation = _guarded(
    ("^", r"[a-z]\s*\^\s*\d"),
    ("\\", r"\\(?:frac|sum|int|sqrt)"),
    ("=", r"\b[a-z]\s*=\s*[-\d(a-z]"),
    ("", r"\d\s*[-+*/×÷^]\s*\d"),
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*•]|[a-z][.)])[ \t]+\S", re.MULTILINE)
_SEQUENCING = frozenset("then next finally first firstly second secondly third thirdly lastly also afterwards".split())


def _sequencing(f: Features) -> bool:
    return sum(1 for word in f.words if word in _SEQUENCING) + f.lower.count("after that") >= 2


_opens_yes_no = _opening(r"is|are|am|was|were|do|does|did|can|could|will|would|should|has|have|had", 12)
_asks_to_explain = _vocab("explain describe elaborate")


def _explain(f: Features) -> bool:
    return (bool(f.words) and f.words[0] in ("why", "how")) or _asks_to_explain(f)


RULES: tuple[Rule, ...] = (
    # trivial cues
    Rule(
        "greeting",
        -2.0,
        _opening(
            r"hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|night)|"
            r"thanks|thank you|thx|ok|okay|bye|goodbye|cheers|how are you",
            6,
        ),
    ),
    Rule("yes_no_question", -0.8, lambda f: f.text.rstrip().endswith("?") and _opens_yes_no(f)),
    Rule(
        "short_definition",
        -1.0,
        _opening(r"what(?:'s| is| are| was| were| does)|who(?:'s| is| was| were)|define|definition of|meaning of", 10),
    ),
    Rule("word_translation", -1.2, _opening(r"translate|how do (?:you|i) say", 10)),
    Rule("short_prompt", -0.5, lambda f: f.tokens < SHORT_PROMPT),
    # length
    Rule("long_prompt", 0.6, lambda f: LONG_PROMPT <= f.tokens < VERY_LONG_PROMPT),
    Rule("very_long_prompt", 1.2, lambda f: f.tokens >= VERY_LONG_PROMPT),
    Rule("long_context", 0.6, lambda f: f.context_tokens >= LONG_CONTEXT),
    Rule("long_conversation", 0.3, lambda f: f.turns > LONG_CONVERSATION),
    # code
    Rule("code", 1.0, lambda f: _code_syntax(f.text)),
    Rule(
        "programming",
        0.6,
        _vocab(
            "code bug bugs traceback exception regex algorithm algorithms api endpoint python javascript "
            "typescript java rust golang c++ sql database query function class script async",
            stems="implement refactor debug compil thread concurren",
            phrases=("stack trace", "unit test"),
        ),
    ),
    # math and reasoning
    Rule(
        "proof",
        1.6,
        _vocab("prove proof derive derivation theorem lemma corollary", stems="rigorous", phrases=("by induction",)),
    ),
    Rule(
        "math",
        0.9,
        _vocab(
            "integral integrate derivative differentiate equation equations solve calculate compute probability "
            "matrix matrices polynomial",
            stems="eigen converge optimi minimi maximi",
            phrases=("expected value", "limit of"),
        ),
    ),
    Rule(
        "step_by_step",
        0.4,
        _vocab(
            "",
            phrases=(
                "step by step", "step-by-step", "show your work", "show the work", "show all work",
                "explain your reasoning", "reason through", "reason carefully", "think carefully", "justify each",
            ),
        ),
    ),
    Rule("equation", 0.5, lambda f: _equation(f.lower)),
    Rule("numbers", 0.3, _at_least(3, _NUMBER)),
    # multi-step instructions
    Rule("list", 0.6, _at_least(2, _LIST_ITEM)),
    Rule("sequencing", 0.5, _sequencing),
    Rule("several_questions", 0.6, lambda f: f.text.count("?") >= 2),
    # analysis and creative work
    Rule(
        "analysis",
        0.9,
        _vocab(
            "analyze analyse analysis compare comparison contrast evaluate assess critique tradeoff tradeoffs "
            "implication implications justify nuanced weigh",
            phrases=("trade-off", "trade off", "pros and cons", "in depth", "in-depth"),
        ),
    ),
    Rule(
        "design",
        1.0,
        _vocab(
            "design distributed microservice microservices scalable scalability throughput consistency "
            "replication sharding",
            stems="architect",
            phrases=("system design", "scale out", "fault toleran", "fault-toleran", "high availability"),
        ),
    ),
    Rule(
        "creative",
        0.6,
        _vocab(
            "essay story poem novel screenplay article speech lyrics",
            phrases=("blog post", "cover letter", "write a ", "write an "),
        ),
    ),
    Rule("explain", 0.4, _explain),
)
