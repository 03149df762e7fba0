"""Evaluation sets that ship with costmesh (package data under `tooling/eval/data/`).

`assistant` (`assistant_pairs.jsonl.gz`): 626 pairs of the kind of requests people send to
assistants (coding, debugging, writing and editing, explanations, how-to, advice, math, data,
translation, summaries), written by hand by the project for evaluation and never trained on:
267 paraphrases (the same request reworded: reordered, colloquial, terse or polite, synonyms) and
359 near-misses that must not share an answer (`kind`: a swapped entity or another task on the
same subject, a negation or reversed direction, a changed number, unit or date, a changed scope,
another output format, another programming language or human language, another audience). None
of its texts appears in the verifier's training data (the Quora pairs, the generated traps):
`tests/test_eval_packaged.py`.
Unlike the traps (`costmesh.tooling.verification.traps`), no template made it.

`costmesh eval cache --pairs assistant` reads it by name; any other value is a path.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PAIRS = {"assistant": DATA / "assistant_pairs.jsonl.gz"}


def pairs_path(name_or_path: str) -> str:
    """A packaged set's file for its name; anything else is returned as given (a path)."""
    packaged = PAIRS.get(name_or_path)
    return str(packaged) if packaged is not None else name_or_path
