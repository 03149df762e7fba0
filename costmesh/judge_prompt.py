"""The LLM judge's prompt for shadow checks, and its verdict read back.

One definition for the gateway (which asks a model through the router) and the simulator (whose
judge mode recognises the prompt and answers it deterministically).
"""

from __future__ import annotations

import re

MARKER = "[costmesh shadow judge]"
SAME, DIFFERENT = "SAME", "DIFFERENT"
MAX_ANSWER_CHARS = 4000  # each answer, as the judge reads it

_PROMPT = re.compile(
    re.escape(MARKER) + r".*?<question>\n(?P<question>.*?)\n</question>\n<answer_a>\n(?P<a>.*?)\n</answer_a>\n"
    r"<answer_b>\n(?P<b>.*)\n</answer_b>\s*$",
    re.DOTALL,
)
_VERDICT = re.compile(r"\b(SAME|DIFFERENT)\b", re.IGNORECASE)


def judge_prompt(question: str, served: str, fresh: str) -> str:
    """The judge's user message: the question, then the two answers, asked for one word."""
    return (
        f"{MARKER} Two answers were given to one question. Do they answer it the same way: the same "
        "facts, numbers, names, steps and advice, whatever the wording? Reply with one word, "
        f"{SAME} or {DIFFERENT}.\n\n"
        f"<question>\n{question}\n</question>\n"
        f"<answer_a>\n{served[:MAX_ANSWER_CHARS]}\n</answer_a>\n"
        f"<answer_b>\n{fresh[:MAX_ANSWER_CHARS]}\n</answer_b>"
    )


def read_judge_prompt(prompt: str) -> tuple[str, str, str] | None:
    """(question, answer a, answer b) of a judge prompt; None for any other prompt."""
    if MARKER not in prompt:
        return None
    match = _PROMPT.search(prompt)
    if match is None:
        return None
    return match["question"], match["a"], match["b"]


def parse_verdict(reply: str) -> str | None:
    """"same" or "different" from the judge's reply (its first SAME or DIFFERENT), None without one."""
    match = _VERDICT.search(reply or "")
    return match[1].lower() if match else None
