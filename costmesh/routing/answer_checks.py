"""Checks of a model's answer to a math word problem: is its arithmetic right, does it end in a
final answer, does it use the problem's numbers and only those?

`math_checks(prompt, answer)` returns the named features the cascade's gate reads. Arithmetic
is re-evaluated with a tiny expression evaluator over `ast` (numbers and + - * / ** only,
never `eval`).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?|(?<![\w.])-?\.\d+")
# A GSM8K-style calculator annotation: <<48/2=24>>
_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_ANNOTATED_RESULT = re.compile(r"<<[^<>]+>>\s*\$?\s*-?[\d,]*(?:\.\d+)?")
# An inline equation: arithmetic (at least one operator) = a number.
_EXPR_CHARS = r"[\d\s.,$%()+\-*/x×÷^]"
_INLINE = re.compile(r"(" + _EXPR_CHARS + r"+?)=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_FINAL = (
    re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)"),
    re.compile(r"\\boxed\{\s*\$?\s*(-?[\d,]*\.?\d+)"),
    re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE),
)
_HEDGES = re.compile(
    r"\b(approximately|about|roughly|around|assume|assuming|not enough information|cannot be determined)\b|≈",
    re.IGNORECASE)
# Numbers a solution may use without finding them in the problem: units, percentages, counts.
COMMON_CONSTANTS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 10, 12, 24, 30, 31, 52, 60, 100, 365, 1000})

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def _num(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression ("3 x 4 + 10%"), or None if it is not one."""
    text = expression.replace(",", "").replace("$", "").replace("×", "*").replace("÷", "/").replace("^", "**")
    text = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d(])", "*", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", text)
    text = text.strip()
    if not text or not re.fullmatch(r"[\d\s.()+\-*/]+", text):
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 12 or abs(left) > 1e6):
                raise ValueError("power too large")
            return _OPS[type(node.op)](left, right)
        raise ValueError("not arithmetic")

    try:
        value = walk(tree)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.011 * abs(b), 0.011)


def _has_operator(expression: str) -> bool:
    return re.search(r"\d\s*(?:[-+*/×÷^]|x(?=\s*[\d(]))\s*[\d($]", expression) is not None


@dataclass(frozen=True)
class MathChecks:
    """What the checks found in one answer (counts and flags; `features()` is the gate's vector)."""

    equations: int  # arithmetic claims found (annotations and inline equations)
    wrong: int  # of which re-evaluate to another value
    has_final: bool  # ends in a recognisable final answer
    final_integer: bool  # the final answer is a whole number
    final_matches_last: bool  # the final answer is the result of the last computation
    prompt_numbers: int
    prompt_numbers_used: float  # share of the problem's numbers the answer mentions
    unsupported: int  # operands that are neither in the problem, earlier results nor common constants
    hedged: bool
    answer_words: int

    def features(self) -> list[float]:
        return [
            float(self.wrong > 0),
            self.wrong / max(self.equations, 1),
            float(self.equations == 0),
            float(not self.has_final),
            float(self.has_final and not self.final_integer),
            float(self.has_final and not self.final_matches_last),
            1.0 - self.prompt_numbers_used,
            min(self.unsupported, 5) / 5.0,
            float(self.hedged),
            math.log1p(self.answer_words) / 6.0,
        ]


FEATURE_NAMES = (
    "arith_wrong_any",
    "arith_wrong_share",
    "no_equations",
    "no_final_answer",
    "final_not_integer",
    "final_not_last_result",
    "prompt_numbers_unused",
    "unsupported_operands",
    "hedged",
    "answer_log_words",
)


def _final(answer: str) -> float | None:
    for pattern in _FINAL:
        found = pattern.findall(answer)
        if found:
            return _num(found[-1])
    return None


def math_checks(prompt: str, answer: str) -> MathChecks:
    found: list[tuple[int, str, float]] = []  # (position, expression, claimed value), in reading order
    for match in _ANNOTATION.finditer(answer):
        parsed = _num(match.group(2))
        if parsed is not None:
            found.append((match.start(), match.group(1), parsed))
    # Blank out annotations and the results written after them (same length: positions still agree).
    plain = _ANNOTATED_RESULT.sub(lambda m: " " * len(m.group()), answer)
    for match in _INLINE.finditer(plain):
        parsed = _num(match.group(2))
        if parsed is not None and _has_operator(match.group(1)):
            found.append((match.start(), match.group(1), parsed))
    claims = [(expression, value) for _, expression, value in sorted(found, key=lambda c: c[0])]
    wrong = 0
    results: list[float] = []
    operands: list[float] = []
    for expression, value in claims:
        computed = evaluate(expression)
        if computed is None:
            continue
        if not _close(computed, value):
            wrong += 1
        results.append(value)
        operands.extend(v for v in (_num(n) for n in _NUMBER.findall(expression)) if v is not None)
    prompt_values = [v for v in (_num(n) for n in _NUMBER.findall(prompt)) if v is not None]
    answer_values = {v for v in (_num(n) for n in _NUMBER.findall(answer)) if v is not None}
    used = sum(1 for v in prompt_values if v in answer_values) / len(prompt_values) if prompt_values else 1.0
    known = set(prompt_values) | set(results) | COMMON_CONSTANTS
    known_pct = {v / 100 for v in prompt_values} | {v * 100 for v in prompt_values}
    unsupported = sum(1 for v in operands if v not in known and v not in known_pct and abs(v) >= 1)
    final = _final(answer)
    return MathChecks(
        equations=len(claims),
        wrong=wrong,
        has_final=final is not None,
        final_integer=final is not None and abs(final - round(final)) < 1e-9,
        final_matches_last=final is not None and bool(results) and _close(results[-1], final),
        prompt_numbers=len(prompt_values),
        prompt_numbers_used=used,
        unsupported=unsupported,
        hedged=_HEDGES.search(answer) is not None,
        answer_words=len(answer.split()),
    )


_CHOICES = re.compile(r"^\s*[A-E][.)]\s", re.MULTILINE)


_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|thousand|million|half|twice|thrice|double|triple|third|quarter|dozen)\b",
    re.IGNORECASE,
)


_ASKS = re.compile(r"\?|\bhow (?:many|much|long|far|old|fast|often)\b|\b(?:calculate|compute|find|determine)\b",
                   re.IGNORECASE)


MIN_PROBLEM_WORDS = 12  # "What is 2 + 2?" is a sum, not a word problem


def is_math_problem(prompt: str) -> bool:
    """A word problem (a dozen words or more) with at least two quantities (digits or number
    words), asking for something, and not a multiple-choice question."""
    if len(prompt.split()) < MIN_PROBLEM_WORDS:
        return False
    quantities = len(_NUMBER.findall(prompt)) + len(_NUMBER_WORDS.findall(prompt))
    return quantities >= 2 and _ASKS.search(prompt) is not None and len(_CHOICES.findall(prompt)) < 2
