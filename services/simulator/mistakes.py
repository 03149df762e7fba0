"""When a cheaper model gets a tool call or a JSON answer wrong: decided by prompt hash, per model.

The quality notion is the simulator's existing one: a model replays the "weak" or the
"strong" side of the routing books. Strong-side models never get the structure wrong. A
weak-side model gets it wrong with the probability the book gives its answer to the prompt
(1 - weak_score: a question the weak model failed in the book is botched here too), or
`WEAK_MISTAKE_RATE` for a prompt no book holds. The draw is a hash of the model, what is
being produced and the prompt, so the same request always comes out the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.books import Books, normalise

WEAK_MISTAKE_RATE = 0.25


@dataclass(frozen=True)
class Mistake:
    """The draw for one output: whether it goes wrong, and a second number to choose how."""

    wrong: bool
    pick: int

    def kind(self, kinds: Sequence[str]) -> str | None:
        """Which of the applicable `kinds` of mistake is made (None when right or none applies)."""
        if not self.wrong or not kinds:
            return None
        return kinds[self.pick % len(kinds)]


RIGHT = Mistake(False, 0)


def mistake_rate(books: Books, spec: ModelSpec, prompt: str) -> float:
    if spec.replay != "weak":
        return 0.0
    entry = books.lookup(prompt)
    if entry is not None and isinstance(entry.weak_score, (int, float)):
        return min(max(1.0 - float(entry.weak_score), 0.0), 1.0)
    return WEAK_MISTAKE_RATE


def draw(books: Books, spec: ModelSpec, prompt: str, output: str) -> Mistake:
    """Whether `spec` gets `output` ("tool_call", "json") wrong for `prompt`, and how."""
    rate = mistake_rate(books, spec, prompt)
    if rate <= 0.0:
        return RIGHT
    digest = hashlib.sha256(f"{spec.id}\x00{output}\x00{normalise(prompt)}".encode()).digest()
    roll = int.from_bytes(digest[:8], "big") / 2.0**64
    return Mistake(roll < rate, int.from_bytes(digest[8:12], "big"))
