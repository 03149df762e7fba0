"""The answer to a prompt for a model: replayed from a book, else generated."""

from __future__ import annotations

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.books import Books
from costmesh.services.simulator.text import generated_answer


def answer_for(books: Books, spec: ModelSpec, prompt: str) -> str:
    """The recorded response of the model's replay side when the book has it; a generated one otherwise."""
    entry = books.lookup(prompt)
    if entry is not None:
        recorded = entry.response(spec.replay)
        if recorded:
            return recorded
    return generated_answer(prompt, spec.id, spec.replay)
