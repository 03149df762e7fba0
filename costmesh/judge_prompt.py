"""The LLM judge's prompts for shadow checks, and their verdicts read back.

Two questions, two prompts:
- a cache hit's check: do the served and the fresh answer answer the question the same way
  (`judge_prompt`, SAME or DIFFERENT);
- a cheap answer's check: is the answer of a cheaper model as good as the premium model's, its
  reference (`quality_prompt`, GOOD or WORSE). Not "the same": a cheap answer worded otherwise,
  or shorter, that is as correct and as useful keeps the premium quality.

One definition for the gateway (which asks a model through the router) and the simulator (whose
judge mode recognises the prompts and answers them deterministically).
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

QUALITY_MARKER = "[costmesh routing judge]"
GOOD, WORSE = "GOOD", "WORSE"
_QUALITY_PROMPT = re.compile(
    re.escape(QUALITY_MARKER) + r".*?<question>\n(?P<question>.*?)\n</question>\n<reference>\n(?P<reference>.*?)"
    r"\n</reference>\n<candidate>\n(?P<candidate>.*)\n</candidate>\s*$",
    re.DOTALL,
)
_QUALITY_VERDICT = re.compile(r"\b(GOOD|WORSE)\b", re.IGNORECASE)


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


def quality_prompt(question: str, candidate: str, reference: str) -> str:
    """The routing judge's user message: the question, the premium model's answer (the reference),
    then the cheaper model's (the candidate), asked for one word."""
    return (
        f"{QUALITY_MARKER} A cheaper model's answer (the candidate) is compared with a stronger "
        "model's answer to the same question (the reference). Is the candidate as good: as correct, "
        "as complete and as useful, whatever its wording or length? Reply with one word, "
        f"{GOOD} if it is at least as good, {WORSE} if it falls short.\n\n"
        f"<question>\n{question}\n</question>\n"
        f"<reference>\n{reference[:MAX_ANSWER_CHARS]}\n</reference>\n"
        f"<candidate>\n{candidate[:MAX_ANSWER_CHARS]}\n</candidate>"
    )


def read_quality_prompt(prompt: str) -> tuple[str, str, str] | None:
    """(question, candidate, reference) of a routing judge prompt; None for any other prompt."""
    if QUALITY_MARKER not in prompt:
        return None
    match = _QUALITY_PROMPT.search(prompt)
    if match is None:
        return None
    return match["question"], match["candidate"], match["reference"]


def parse_quality_verdict(reply: str) -> str | None:
    """"as_good" or "worse" from the routing judge's reply (its first GOOD or WORSE), None without one."""
    match = _QUALITY_VERDICT.search(reply or "")
    if match is None:
        return None
    return "as_good" if match[1].upper() == GOOD else "worse"
